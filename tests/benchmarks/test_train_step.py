"""benchmarks.train_step (and common.time_interleaved): variants timed in turn, widths parsed (the steps stubbed)."""

import argparse
import json

import pytest

from benchmarks import common, train_step


def test_widths_parse_and_refuse():
    assert train_step.widths("128/512") == (128, 512)
    for bad in ("128", "a/b", "1/2/3"):
        with pytest.raises(argparse.ArgumentTypeError, match="PYRAMID/DENSE"):
            train_step.widths(bad)


def test_variants_are_timed_in_turn(monkeypatch):
    calls = []
    clock = [0.0]
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])

    def step(name, seconds):
        def run():
            calls.append(name)
            clock[0] += seconds
        return run

    timings = common.time_interleaved({"a": step("a", 2.0), "b": step("b", 1.0)}, runs=3, warmup=1)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up of each, then one of each in turn
    assert [(t.name, t.median, len(t.runs)) for t in timings] == [("a", 2.0, 3), ("b", 1.0, 3)]


def test_report_names_each_width_mask_size_and_precision(tmp_path, monkeypatch):
    built = []

    def fake_step_function(config, batches, precision):
        built.append((config.TOP_DOWN_PYRAMID_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE, config.MASK_POOL_SIZE,
                      tuple(config.MASK_SHAPE), config.OPTIMIZER, precision))
        return lambda: None

    monkeypatch.setattr(train_step, "step_function", fake_step_function)
    assert train_step.main(["--runs", "2", "--warmup", "0", "--precisions", "bf16", "--optimizer", "Adam",
                            "--widths", "256/1024", "128/512", "--mask-pool-sizes", "14", "7",
                            "--output", str(tmp_path / "r")]) == 0
    assert built == [(256, 1024, 14, (28, 28), "Adam", "bf16"), (256, 1024, 7, (14, 14), "Adam", "bf16"),
                     (128, 512, 14, (28, 28), "Adam", "bf16"), (128, 512, 7, (14, 14), "Adam", "bf16")]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [t["name"] for t in report["timings"]] == ["256/1024 28x28 bf16", "256/1024 14x14 bf16",
                                                      "128/512 28x28 bf16", "128/512 14x14 bf16"]
