"""The 27 benchmark datasets: one case per dataset on a few rows in the hub's exact schema.

The datasets come from conf/ (tests/fixtures/datasets/zoo.py): every YAML under conf/dataset gets the
config checks; the peft_bench preset's list also needs fixture rows and a case here. Each case checks
the first test example's formatted input and target, and the label set, after the dataset's
preprocess, the split protocol (test split, 10% hold-out) and the mirror layout.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest

from bench import CONF_DIR
from bench.config.schema import TASK_TYPES
from bench.data.pipeline import split_examples
from bench.data.preprocess import PREPROCESSORS
from bench.metrics import METRICS
from tests.fixtures.datasets.hub_rows import FIXTURES
from tests.fixtures.datasets.zoo import FIXTURE_FILE, benchmark_datasets, dataset_names, zoo_problems

ZOO = benchmark_datasets(CONF_DIR)  # "the 27": the peft_bench preset's dataset list
ALL = dataset_names(CONF_DIR)  # every YAML under conf/dataset, a user's own included
TF = ["False", "True"]


@dataclass
class Case:
    input: str  # the first test example's formatted input
    target: str
    labels: list[str] | None  # dataset.label_names
    task: str
    headline: str
    references: tuple[str, ...] = ()
    n_test: int = 2  # test rows after preprocess (some drop rows)


CASES: dict[str, Case] = {
    "glue/mnli": Case(
        "Premise: The shop opens at nine.\nHypothesis: The shop is closed all day.",
        "contradiction",
        ["entailment", "neutral", "contradiction"],
        "classification",
        "f1_macro",
    ),
    "glue/qqp": Case(
        "Question 1: How do I learn Python?\nQuestion 2: What is the best way to learn Python?",
        "duplicate",
        ["not_duplicate", "duplicate"],
        "classification",
        "f1_macro",
    ),
    "glue/qnli": Case(
        "Question: Where is the Eiffel Tower?\nSentence: The Eiffel Tower is in Paris.",
        "entailment",
        ["entailment", "not_entailment"],
        "classification",
        "f1_macro",
    ),
    "glue/sst2": Case(
        "a charming , often affecting journey .",
        "positive",
        ["negative", "positive"],
        "classification",
        "f1_macro",
    ),
    "glue/stsb": Case(
        "Sentence 1: A cat sits.\nSentence 2: A cat is sitting.", "4.8", None, "regression", "pearson"
    ),
    "glue/mrpc": Case(
        "Sentence 1: The firm made a profit.\nSentence 2: The company earned money.",
        "equivalent",
        ["not_equivalent", "equivalent"],
        "classification",
        "f1_macro",
    ),
    "glue/rte": Case(
        "Premise: Ann was born in Oslo in 1950.\nHypothesis: Ann was born in Norway.",
        "entailment",
        ["entailment", "not_entailment"],
        "classification",
        "f1_macro",
    ),
    "glue/cola": Case(
        "The sailors rode the breeze.",
        "acceptable",
        ["unacceptable", "acceptable"],
        "classification",
        "f1_macro",
    ),
    "superglue/multirc": Case(
        "Paragraph: Sam has two cats and a dog.\nQuestion: How many cats does Sam have?\n"
        "Candidate answer: Two",
        "True",
        TF,
        "classification",
        "f1_macro",
    ),
    "superglue/record": Case(
        "Story 10: Paris and London met Berlin.\n- Paris wins\n- London loses\n\n"
        "Query: @placeholder won game 10\nCandidates: Paris, London, Berlin",
        "Paris",
        None,
        "generation",
        "record_f1",
        references=("Paris", "London"),  # hub golds [Paris, London, Paris], repeats dropped
    ),
    "superglue/boolq": Case(
        "Passage: The Sun is the star at the centre of the Solar System.\nQuestion: is the sun a star?",
        "True",
        TF,
        "classification",
        "f1_macro",
    ),
    "superglue/wic": Case(
        "Word: bed\nSentence 1: There's a lot of trash on the bed of the river.\n"
        "Sentence 2: I keep a glass of water next to my bed.",
        "False",
        TF,
        "classification",
        "f1_macro",
    ),
    "superglue/wsc": Case(
        "The [trophy] does not fit into the brown suitcase because *it* is too large.\n"
        "Does *it* refer to [trophy]?",
        "True",
        TF,
        "classification",
        "f1_macro",
    ),
    "superglue/cb": Case(
        "Premise: Valence the void-brain. Why couldn't he hold his tongue?\nHypothesis: Valence was helping",
        "contradiction",
        ["entailment", "contradiction", "neutral"],
        "classification",
        "f1_macro",
    ),
    "superglue/copa": Case(
        "The man broke his toe.\nWhat was the cause?\n"
        "A. He dropped a hammer on his foot.\nB. He got a hole in his sock.",
        "A",
        ["A", "B"],
        "multiple_choice",
        "accuracy",
    ),
    "others/mmlu": Case(
        "(elementary mathematics) What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 22",
        "B",
        ["A", "B", "C", "D"],
        "multiple_choice",
        "accuracy",
    ),
    "others/piqa": Case(
        "Keep bread fresh\nA. Store it in the oven while it runs.\nB. Store it in a sealed bag.",
        "B",
        ["A", "B"],
        "multiple_choice",
        "accuracy",
    ),
    "others/siqa": Case(
        "Tracy gave Riley a gift.\nHow would Riley feel?\nA. angry\nB. grateful\nC. bored",
        "B",
        ["A", "B", "C"],
        "multiple_choice",
        "accuracy",
    ),
    "others/hellaswag": Case(
        "Roof shingle removal: A man is sitting on a roof. he\nA. is using wrap to wrap a pair of skis.\n"
        "B. starts pulling up roofing on a roof.\nC. is ripping level tiles off.\n"
        "D. is holding a rubik's cube.",
        "B",
        ["A", "B", "C", "D"],
        "multiple_choice",
        "accuracy",
    ),
    "others/winogrande": Case(
        "Sarah was a much better surgeon than Maria so _ always got the harder cases.\nA. Sarah\nB. Maria",
        "A",
        ["A", "B"],
        "multiple_choice",
        "accuracy",
    ),
    "others/obqa": Case(
        "Frilled sharks and angler fish live far beneath the surface of the ocean, which is why they are "
        "known as\nA. Deep sea animals\nB. fish\nC. Long Sea Fish\nD. Far Sea Animals",
        "A",
        ["A", "B", "C", "D"],
        "multiple_choice",
        "accuracy",
    ),
    "math/mathqa": Case(
        "a train 120 m long crosses a pole in 12 sec . find its speed in m / s .\n"
        "Options:\nA. 12\nB. 10\nC. 8.5\nD. 20\nE. none of these",
        "B",
        ["A", "B", "C", "D", "E"],
        "multiple_choice",
        "f1_macro",
        n_test=3,  # a letter task: the row whose answer is "none of these" is kept
    ),
    "math/gsm8k": Case(
        "Janet has 16 eggs and eats 3. How many are left?",
        "Janet has 16 - 3 = 13 eggs left.\n#### 13",
        None,
        "generation",
        "math_exact_match",
    ),
    "math/svamp": Case(
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack "
        "How much do you have to pay to buy each pack?",
        "( 76.0 - 25.0 ) = 51\n#### 51",
        None,
        "generation",
        "math_exact_match",
    ),
    "code/conala": Case(
        "convert a list of integers into a single integer",
        "r = int(''.join(map(str, x)))",
        None,
        "code",
        "codebleu",
    ),
    "code/codealpaca_py": Case(
        "Write a function that adds two numbers.",
        "def add(a, b):\n    return a + b",
        None,
        "code",
        "codebleu",
    ),
    "code/apps": Case(
        "Read two integers and print their sum.\n\n-----Input-----\nTwo integers a and b.",
        "a, b = map(int, input().split())\nprint(a + b)",
        None,
        "code",
        "codebleu",
        n_test=2,  # of 3: the problem without a reference solution is dropped
    ),
}


def test_every_benchmark_dataset_has_its_yaml_fixture_rows_and_case():
    assert len(ZOO) == 27 == len(set(ZOO)), ZOO
    assert zoo_problems(CONF_DIR, FIXTURES, CASES) == []
    for name in ALL:
        first = (CONF_DIR / "dataset" / f"{name}.yaml").read_text().splitlines()[:2]
        assert first[0] == "# @package dataset" and first[1].startswith("# "), name


def check_dataset_config(ds, benchmark: bool) -> None:
    """The checks every dataset YAML passes; a benchmark one also needs fixture rows."""
    assert ds.task_type in TASK_TYPES
    assert ds.headline_metric in ds.metrics and all(m in METRICS for m in ds.metrics)
    assert ds.preprocess is None or ds.preprocess in PREPROCESSORS
    if benchmark:
        assert (ds.hub_id, ds.hub_config or "default") in FIXTURES, f"add fixture rows to {FIXTURE_FILE}"
    if ds.task_type in ("regression", "generation", "code"):
        assert ds.max_new_tokens, "generation sets set their answer budget"
    else:
        assert ds.label_names and len(set(ds.label_names)) == len(ds.label_names)


@pytest.mark.parametrize("name", ALL)
def test_dataset_config_is_consistent(compose, name):
    ds = compose(f"dataset={name}").dataset
    assert ds.name == name
    check_dataset_config(ds, benchmark=name in ZOO)


def test_a_users_own_dataset_yaml_is_not_a_failing_test(compose, tmp_path):
    """An extra YAML in conf/dataset gets the generic checks only; a benchmark one without fixture rows
    or a case fails, naming the file to add them to."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "dataset" / "mine").mkdir()
    (conf / "dataset" / "mine" / "reviews.yaml").write_text(
        "# @package dataset\n# My reviews.\nname: mine/reviews\nhub_id: me/reviews\n"
        "input_fields: [text]\nlabel_names: [bad, good]\ninstruction: Good or bad?\n"
    )
    assert "mine/reviews" in dataset_names(conf) and "mine/reviews" not in benchmark_datasets(conf)
    assert zoo_problems(conf, FIXTURES, CASES) == []
    compose()  # registers the schemas
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        ds = hydra_compose("config", overrides=["dataset=mine/reviews"]).dataset
    check_dataset_config(ds, benchmark=False)

    preset = conf / "experiment" / "peft_bench.yaml"
    preset.write_text(preset.read_text().replace("code/apps", "code/apps,mine/reviews"))
    assert zoo_problems(conf, FIXTURES, CASES) == [
        f"mine/reviews: no fixture rows for ('me/reviews', 'default'): add them to {FIXTURE_FILE}",
        "mine/reviews: no test case: add one to CASES in tests/unit/data/test_zoo.py",
    ]


@pytest.mark.parametrize("name", ZOO)
def test_fixture_rows_become_prompt_input_target_and_labels(compose, fixture_mirror, name):
    case = CASES[name]
    cfg = compose(f"dataset={name}", f"data.mirror={fixture_mirror}")
    ds = cfg.dataset
    assert (ds.task_type, ds.headline_metric) == (case.task, case.headline)
    assert (list(ds.label_names) if ds.label_names else None) == case.labels
    splits = split_examples(cfg)
    first = splits.test[0]
    assert first.input == case.input
    assert first.target == case.target
    assert first.references == case.references
    assert len(splits.test) == case.n_test
    if case.labels:
        assert {e.target for e in splits.test + splits.train + splits.val} <= set(case.labels)
    # The protocol's hold-out: at least one validation row, disjoint from train.
    assert splits.val and splits.train and not set(splits.val) & set(splits.train)


@pytest.mark.parametrize(
    "name", [n for n in ZOO if n.startswith(("glue/", "superglue/")) and CASES[n].task == "classification"]
)
def test_label_words_are_the_hub_classlabel_names(compose, name):
    ds = compose(f"dataset={name}").dataset
    features, _ = FIXTURES[(ds.hub_id, ds.hub_config)]
    assert list(ds.label_names) == features[ds.label_field].names


# PEFT-Factory's layout (scripts/peftfactory/preprocess_datasets.py) of the first fixture test row, by hand.
PAPER_CASES: dict[str, tuple[str, str]] = {
    "glue/mnli": ("The shop opens at nine.\nThe shop is closed all day.", "contradiction"),
    "superglue/wsc": (
        # the noun in * *, the pronoun in # #: PEFT-Factory's markup (its instruction says the opposite)
        "The * trophy * does not fit into the brown suitcase because # it # is too large.",
        "True",
    ),
    "superglue/copa": (
        "Premise: The man broke his toe.\n\nChoice1: He dropped a hammer on his foot.\n\n"
        "Choice2: He got a hole in his sock.",
        "choice1",
    ),
    "superglue/record": (
        "Query: @placeholder won game 10\n\nEntities: Paris, London, Berlin, Paris\n\n"
        "Passage: Story 10: Paris and London met Berlin. Paris wins. London loses",
        "Paris",
    ),
    "others/winogrande": (
        "Sentence: Sarah was a much better surgeon than Maria so _ always got the harder cases.\n\n"
        "Option1: Sarah\nOption1: Maria",  # both labelled Option1, as published
        "option1",
    ),
    "others/hellaswag": (
        "Sentence: A man is sitting on a roof. He,\n\nEnding1: is using wrap to wrap a pair of skis.\n"
        "Ending2: starts pulling up roofing on a roof.\nEnding3: is ripping level tiles off.\n"
        "Ending4: is holding a rubik's cube.",
        "ending2",
    ),
    "others/obqa": (
        "Question: Frilled sharks and angler fish live far beneath the surface of the ocean, which is why "
        "they are known as\n\nChoices:\nA: Deep sea animals\nB: fish\nC: Long Sea Fish\nD: Far Sea Animals",
        "A",
    ),
    "math/mathqa": (
        "Problem: a train 120 m long crosses a pole in 12 sec . find its speed in m / s .\n\n"
        "Options: a ) 12 , b ) 10 , c ) 8.5 , d ) 20 , e ) none of these",
        "b",
    ),
    "math/gsm8k": (
        "Janet has 16 eggs and eats 3. How many are left?",
        "Janet has 16 - 3 = <<16-3=13>>13 eggs left.\n#### 13",
    ),
    "math/svamp": (
        "Question: Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack "
        "How much do you have to pay to buy each pack?",
        "( 76.0 - 25.0 ) = 51.0",
    ),
}


@pytest.mark.parametrize("name", ZOO)
def test_every_dataset_has_a_paper_prompt_that_reads_its_rows(compose, fixture_mirror, name):
    from bench.config.validate import validate

    cfg = compose(f"dataset={name}", f"data.mirror={fixture_mirror}", "dataset.prompt_style=paper")
    validate(cfg)
    paper = cfg.dataset.paper
    splits = split_examples(cfg)  # puts the paper's fields in place on cfg.dataset
    ds = cfg.dataset
    assert ds.instruction == paper.instruction and (paper.input_template in (None, ds.input_template))
    if ds.label_names:
        assert {e.target for e in splits.test + splits.train + splits.val} <= set(ds.label_names)
        assert len(ds.label_names) == len(CASES[name].labels)
    if name in PAPER_CASES:
        assert (splits.test[0].input, splits.test[0].target) == PAPER_CASES[name]


def test_paper_training_rows_use_the_papers_train_instruction(compose, fixture_mirror, cache_dir, tmp_path):
    from bench.data.pipeline import prepare_data
    from bench.models import load_model_and_tokenizer

    cfg = compose("model=tiny-random", f"data.mirror={fixture_mirror}", "dataset=others/winogrande")
    cfg.dataset.prompt_style = "paper"
    cfg.paths.cache_dir = str(tmp_path)
    _, tok = load_model_and_tokenizer(cfg.model, cache_dir)
    data = prepare_data(cfg, tok)
    instruction = cfg.dataset.paper.instruction
    assert instruction in data.test_prompts[0]  # the eval entry's instruction
    assert not any(
        "Based on the sentence" in tok.decode(ids) for ids in data.train["input_ids"]
    )  # train: none
    assert list(cfg.dataset.label_names) == ["option1", "option2"]  # what parsing and scoring read


def test_mnli_tests_on_mismatched_and_matched_is_one_override(compose, fixture_mirror):
    mirror = f"data.mirror={fixture_mirror}"
    assert compose("dataset=glue/mnli").dataset.test_split == "validation_mismatched"  # PEFT-Factory's
    matched = split_examples(compose("dataset=glue/mnli", mirror, "dataset.test_split=validation_matched"))
    assert [(e.input.splitlines()[0], e.row_id) for e in matched.test] == [
        ("Premise: Shops open at nine.", "7")
    ]
