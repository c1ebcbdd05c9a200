"""Variants: identity minus seed, labelled by what differs; duplicates once; --filter and --group-by."""

from __future__ import annotations

import mixed_tree  # tests/unit/analysis is on sys.path (pytest prepend mode)
import pytest

from multirun_analysis import tables
from multirun_analysis.records import load_runs
from multirun_analysis.variants import flatten, identity


@pytest.fixture
def tree(tmp_path):
    return mixed_tree.build(tmp_path)


def test_identity_drops_seed_and_non_identity_sections():
    ident = identity(mixed_tree.config(8, "generate", 1))
    assert "seed" not in ident and "paths.results_dir" not in ident
    assert ident["hardware.device"] == "cpu"  # device and precision are identity (the run key's contract)
    assert "model.architecture.layers" not in ident  # descriptive, as in the run key's hash
    assert ident["method.options.r"] == 8 and ident["eval.mode"] == "generate"
    assert flatten({"a": {"b": [1, 2]}}) == {"a.b": "[1, 2]"}


def test_mixed_tree_variants_labelled_and_duplicates_once(tree):
    runs = load_runs([tree, tree])  # the same folder twice, and a copied run folder inside it
    assert runs.attrs["duplicates"] == 1  # the copy; the folder passed twice is read once
    assert len(runs) == 6  # 5 successful runs + 1 failed, each once
    assert sorted(set(runs["label"])) == [
        "lora [eval.mode=generate, r=16]",
        "lora [eval.mode=generate, r=8]",
        "lora [eval.mode=score, r=16]",
    ]
    perf = tables.performance_table(runs)
    cell = ("GLUE", "glue/sst2")
    assert perf.loc[("tiny-random", "lora [eval.mode=generate, r=8]"), cell] == pytest.approx(81.25)
    assert perf.loc[("tiny-random", "lora [eval.mode=generate, r=16]"), cell] == pytest.approx(93.75)
    assert perf.loc[("tiny-random", "lora [eval.mode=score, r=16]"), cell] == pytest.approx(50.0)
    _, n = tables.stability_table(runs)
    assert n[cell].tolist() == [2, 2, 1]  # nothing counted twice, never mixed
    failures = tables.failures_table(runs)
    assert failures[["status", "label", "seed"]].values.tolist() == [
        ["failed", "lora [eval.mode=generate, r=8]", 3]
    ]


def test_a_lone_variant_has_no_brackets(tree):
    runs = load_runs([tree], filters=["eval.mode=generate", "method.options.r=8"])
    assert set(runs["label"]) == {"lora"} and sorted(runs["seed"]) == [1, 2, 3]


def test_filter_options_and_record_fields(tree):
    runs = load_runs([tree], filters=["method.options.r=8,16", "status=success", "seed=1"])
    assert sorted(runs["label"]) == [
        "lora [eval.mode=generate, r=16]",
        "lora [eval.mode=generate, r=8]",
        "lora [eval.mode=score, r=16]",
    ]


def test_group_by_splits_what_identity_merges(tree):
    runs = load_runs([tree], filters=["eval.mode=generate", "method.options.r=16"], group_by=["seed"])
    assert sorted(runs["label"]) == ["lora [seed=1]", "lora [seed=2]"]


def test_unknown_filter_key_names_close_keys(tree):
    with pytest.raises(ValueError, match=r"no run has the key 'method.options.rank'.*method.options.r"):
        load_runs([tree], filters=["method.options.rank=8"])
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        load_runs([tree], filters=["r8"])
    with pytest.raises(ValueError, match="--group-by 'evalmode'.*eval.mode"):
        load_runs([tree], group_by=["evalmode"])


def test_a_setting_at_its_neutral_value_is_labelled_with_it():
    """trainer.learning_rate_scale 1.0 is left out of the run key (bench.config.run_key); the label still
    says 1.0 beside the tuned runs' value, never "missing"."""
    import pandas as pd

    from multirun_analysis.variants import assign_variants

    configs = [mixed_tree.config(8, "generate", 1), mixed_tree.config(8, "generate", 1)]
    configs[1]["trainer"] = {**configs[1].get("trainer", {}), "learning_rate_scale": 3.162}
    configs[0]["trainer"] = {**configs[0].get("trainer", {}), "learning_rate_scale": 1.0}
    runs = pd.DataFrame(
        {"model": ["m", "m"], "method": ["lora", "lora"], "dataset": ["d", "d"], "config": configs}
    )
    assert assign_variants(runs)["label"].tolist() == [
        "lora [trainer.learning_rate_scale=1.0]",
        "lora [trainer.learning_rate_scale=3.162]",
    ]


def test_group_by_git_commit_keeps_each_commits_runs(tmp_path, capsys):
    # the same run (same run key: the key holds no commit) at two commits, right on all 8 rows at aaa and
    # on none at bbb: --group-by git_commit keeps all 4 runs as two variants; without it the bbb records
    # are duplicates (dropped, with one warning line: their headlines differ)
    for commit, value in (("aaa", 1.0), ("bbb", 0.0)):
        for seed in (1, 2):
            rec = mixed_tree.record(8, "generate", seed)
            rec.update(git_commit=commit, headline_value=value, metrics={"accuracy": value})
            mixed_tree.write_run(
                tmp_path / commit / f"s{seed}", rec, mixed_tree.predictions([int(value)] * 8)
            )
    runs = load_runs([tmp_path], group_by=["git_commit"])
    assert runs.attrs["duplicates"] == 0
    by_label = runs.groupby("label")["headline_value"].agg(list).to_dict()
    assert by_label == {"lora [git_commit=aaa]": [1.0, 1.0], "lora [git_commit=bbb]": [0.0, 0.0]}
    assert capsys.readouterr().err == ""
    merged = load_runs([tmp_path])
    assert merged.attrs["duplicates"] == 2 and merged["headline_value"].tolist() == [1.0, 1.0]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 dropped duplicate record(s) of a run key differ in headline" in err[0]
