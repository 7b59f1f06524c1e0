"""benchmarks.train_shapes: the curriculum's stages (training and evaluation stubbed)."""

import functools
import json
import types

import pytest

from benchmarks import shapes_ood, train_shapes
from model.configs import ShapesConfig
from model.evaluate import Evaluation
from model.training.loop import TrainingRun

STATS = {k: 0.5 for k in ("AP", "AP50", "AP75", "APs", "APm", "APl")}


def stub_scoring(tmp_path, monkeypatch, evaluate=None):
    """A 2-image OOD set, evaluation stubbed (every AP 0.5 unless ``evaluate``), no artifact
    copy; returns main's arguments for them and the outputs under ``tmp_path``."""
    ood_dir = str(tmp_path / "ood")  # not the default folder, which a clean clone does not have
    ood_json = shapes_ood.write_set(ood_dir, 2, 0)
    monkeypatch.setattr(train_shapes, "evaluate",
                        evaluate or (lambda model, data, limit=None: Evaluation(2, STATS, STATS, 0.5)))
    monkeypatch.setattr(train_shapes.shapes_ood, "write_set", lambda folder: folder == ood_dir and ood_json)
    monkeypatch.setattr(train_shapes.shutil, "copyfile", lambda a, b: None)
    return ["--train-images", "4", "--ood-dir", ood_dir, "--output", str(tmp_path / "r"),
            "--artifact", str(tmp_path / "a.pt")]


def trained_to(run, epochs, run_dir):
    """What a stubbed train_model returns: ``run`` (a new one in ``run_dir`` when None)
    with a history entry for each epoch up to ``epochs``."""
    run = run or TrainingRun(run_dir=str(run_dir))
    run.history += [{"epoch": e, "loss": 1.0, "mrcnn_mask_loss": 0.5} for e in range(run.epoch + 1, epochs + 1)]
    run.epoch = epochs
    return run


def tag_styles(monkeypatch):
    """shapes_dataset patched so that each dataset main draws names its style (``.style``)."""
    real_dataset = train_shapes.shapes_dataset

    def tagged_dataset(count, height, width, seed, style=train_shapes.SHAPES_STYLES["standard"]):
        dataset = real_dataset(count, height, width, seed, style)
        dataset.style = next(name for name, s in train_shapes.SHAPES_STYLES.items() if s == style)
        return dataset

    monkeypatch.setattr(train_shapes, "shapes_dataset", tagged_dataset)


@pytest.mark.parametrize("easy, expected", [
    (3, [("standard", "flip", 3e-4, 3), ("varied", "default", 3e-4, 34), ("mosaic", "default", 3e-4, 40),
         ("mosaic", "default", 3e-5, 43)]),
    (0, [("varied", "default", 3e-4, 34), ("mosaic", "default", 3e-4, 40), ("mosaic", "default", 3e-5, 43)]),
])
def test_curriculum_stages(easy, expected, tmp_path, capsys, monkeypatch):
    """The default schedule: --easy-epochs on standard shapes, varied ones, the last 6
    base-rate epochs and the fine ones on mosaics (--late-epochs 6 --late-style mosaic)."""
    stages = []

    def fake_train(model, dataset, val, lr, epochs, run=None, **kwargs):
        stages.append((dataset.style, kwargs["augmentation"], round(lr, 9), epochs))
        assert (kwargs["seed"], kwargs["keep_checkpoints"]) == (7, 2)
        return trained_to(run, epochs, tmp_path)

    tag_styles(monkeypatch)
    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    assert train_shapes.main(["--easy-epochs", str(easy), "--seed", "7"] + stub_scoring(tmp_path, monkeypatch)) == 0
    assert stages == expected
    out = capsys.readouterr().out
    assert ("after --easy-epochs 3 on standard shapes" in out) == (easy == 3) and "seed 7;" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert [h["epoch"] for h in report["history"]] == list(range(1, 44))
    assert "by background texture" in out and sum(b["images"] for b in report["ood_by_background"].values()) == 2


def test_easy_epochs_beyond_the_schedule_no_checkpoints_a_bad_average_or_peak_are_refused(capsys):
    with pytest.raises(SystemExit):
        train_shapes.main(["--easy-epochs", "41"])
    assert "--easy-epochs 41 must lie in 0..--epochs (40)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_shapes.main(["--keep-checkpoints", "0"])
    assert "--keep-checkpoints must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_shapes.main(["--average-decay", "1"])
    assert "--average-decay must lie in [0, 1) (0: no average), not 1" in capsys.readouterr().err
    for argv in (["--peak-lr", "1e-3"], ["--schedule", "linear", "--peak-lr", "0"]):
        with pytest.raises(SystemExit):
            train_shapes.main(argv)
        assert "a positive rate, with --schedule linear" in capsys.readouterr().err


def test_time_budget_keeps_the_fine_epochs_in_reserve():
    now = [0.0]
    budget = train_shapes.TimeBudget(1000, clock=lambda: now[0])
    assert budget.fits(3)  # nothing measured yet
    stop = budget.stop_after(reserve=3)
    ran = 0
    for duration in (100, 100, 100, 130, 90, 90, 90):  # the slowest of the last three sets the pace
        now[0] += duration
        ran += 1
        if stop(None):
            break
    # after 5 epochs (520 s) a 6th plus 3 in reserve at 130 s would end at 1040 s > 1000
    # (at the last epoch's 90 s it would fit)
    assert ran == 5 and budget.fits(2) and not budget.fits(3)


def clocked_training(monkeypatch, tmp_path):
    """train_model stubbed on a fake clock (100 s an epoch) that TimeBudget reads. Returns
    the clock [seconds] and the stages trained, each (dataset, lr, first epoch, last
    epoch, the optimizer state it was given); a stage leaves {"after epoch": E}."""
    clock, stages = [0.0], []

    def fake_train(model, dataset, val, lr, epochs, run=None, stop_after=None, **kwargs):
        run = run or TrainingRun(run_dir=str(tmp_path))
        start, given = run.epoch, run.optimizer_state
        while run.epoch < epochs:
            clock[0] += 100
            run.epoch += 1
            run.history.append({"epoch": run.epoch, "loss": 1.0, "mrcnn_mask_loss": 0.5})
            if stop_after(run):
                break
        stages.append((dataset, round(lr, 9), start, run.epoch, given))
        run.optimizer_state = {"after epoch": run.epoch}
        return run

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    monkeypatch.setattr(train_shapes, "TimeBudget", functools.partial(train_shapes.TimeBudget, clock=lambda: clock[0]))
    return clock, stages


@pytest.mark.parametrize("carry", [False, True])
def test_budget_cuts_the_base_rate_epochs_first(tmp_path, capsys, monkeypatch, carry):
    """An epoch takes 100 s (a fake clock) and the budget is 20 minutes: 9 epochs at the
    base rate (3 easy + 6) and all 3 fine ones, not the planned 40 + 3. Each stage starts
    a new optimizer unless --carry-optimizer."""
    clock, stages = clocked_training(monkeypatch, tmp_path)
    assert train_shapes.main(["--budget-minutes", "20", "--late-epochs", "0"] + ["--carry-optimizer"] * carry
                             + stub_scoring(tmp_path, monkeypatch)) == 0
    assert [stage[1:4] for stage in stages] == [(3e-4, 0, 3), (3e-4, 3, 9), (3e-5, 9, 12)] and clock[0] == 1200
    assert [stage[4] for stage in stages] == ([None, {"after epoch": 3}, {"after epoch": 9}] if carry else [None] * 3)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["epochs_trained"] == {"base": 9, "fine": 3} and report["args"]["late_style"] is None
    out = capsys.readouterr().out
    assert "9 epochs at lr 0.0003 + 3 at lr 3e-05 (planned 40 + 3: --budget-minutes 20 cut it)" in out


def test_late_style_takes_the_last_base_epochs_and_the_fine_ones_within_the_budget(tmp_path, capsys, monkeypatch):
    """100 s an epoch, 20 minutes: the varied stage ends where 2 late + 3 fine epochs
    still fit (3 easy + 4 varied), then 2 at the base rate and 3 at a tenth on mosaics."""
    tag_styles(monkeypatch)
    clock, stages = clocked_training(monkeypatch, tmp_path)
    assert train_shapes.main(["--budget-minutes", "20", "--late-style", "mosaic", "--late-epochs", "2"]
                             + stub_scoring(tmp_path, monkeypatch)) == 0
    assert [(stage[0].style,) + stage[1:4] for stage in stages] == [
        ("standard", 3e-4, 0, 3), ("varied", 3e-4, 3, 7), ("mosaic", 3e-4, 7, 9), ("mosaic", 3e-5, 9, 12)]
    assert clock[0] == 1200
    out = capsys.readouterr().out
    assert "9 epochs at lr 0.0003 + 3 at lr 3e-05" in out
    assert "the last 2 epochs at lr 0.0003 and those at a tenth on --late-style mosaic" in out
    assert json.loads((tmp_path / "r.json").read_text())["args"]["late_style"] == "mosaic"


@pytest.mark.parametrize("argv", [["--late-epochs", "-1"], ["--schedule", "linear"],
                                  ["--late-style", "periodic", "--late-epochs", "2", "--schedule", "linear"],
                                  ["--late-epochs", "38"]])
def test_late_epochs_negative_with_a_linear_schedule_or_beyond_the_schedule_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        train_shapes.main(argv)
    assert "--late-" in capsys.readouterr().err


def test_a_weight_average_is_scored_beside_the_live_weights_and_kept(tmp_path, capsys, monkeypatch):
    """--average-decay: train_model keeps the average; the report headlines it, gives the
    live weights' figures beside it, and the artifact holds the average."""
    averaged = {k: 0.75 for k in STATS}
    decays, saved = [], []

    class FakeAverage:
        updates = 2500

        def copy_to(self, model):
            model.averaged = True

    def fake_train(model, dataset, val, lr, epochs, run=None, average_decay=None, **kwargs):
        decays.append(average_decay)
        run = trained_to(run, epochs, tmp_path)
        run.average = run.average or FakeAverage()
        return run

    def fake_evaluate(model, data, limit=None):
        stats = averaged if getattr(model, "averaged", False) else STATS
        return Evaluation(2, stats, stats, 0.5)

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    monkeypatch.setattr(train_shapes, "save_checkpoint", lambda path, model, *a, **k: saved.append(
        (path, getattr(model, "averaged", False), k["source"])))
    assert train_shapes.main(["--average-decay", "0.999"] + stub_scoring(tmp_path, monkeypatch, fake_evaluate)) == 0
    assert decays == [0.999] * 4  # easy, varied, late and fine stages
    assert saved and saved[0][:2] == (str(tmp_path / "a.pt"), True) and "decay 0.999" in saved[0][2]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["evaluation_ood"]["mask"]["AP50"] == 0.75
    assert report["live_weights"]["evaluation_ood"]["mask"]["AP50"] == 0.5
    out = capsys.readouterr().out
    assert "moving average of the live ones (decay 0.999 per step, 2500 steps)" in out
    assert "same generator 0.500 (0.750), out of distribution 0.500 (0.750)" in out


def test_linear_rate_falls_to_zero_over_the_epochs_planned():
    assert [train_shapes.linear_rate(6.0, done, 3 - done) for done in range(3)] == [6.0, 4.0, 2.0]
    assert train_shapes.linear_rate(6.0, 2, 2) == 3.0  # re-planned: 4 epochs in all now, half way


def test_time_budget_counts_the_epochs_left():
    now = [0.0]
    budget = train_shapes.TimeBudget(1000, clock=lambda: now[0])
    assert budget.epochs_left() >= 10 ** 6  # no pace yet
    stop = budget.stop_after(reserve=0)
    for duration in (100, 150, 100):
        now[0] += duration
        stop(None)
    assert budget.epochs_left() == 4  # 650 s left at 150 s an epoch


def test_linear_schedule_plans_the_decay_within_the_budget(tmp_path, capsys, monkeypatch):
    """The budget is 20 minutes, an easy epoch takes 100 s, a varied one 150 s: 3 easy
    epochs at --lr, then the decay from --peak-lr, one epoch per train_model call, planned
    for 9 epochs at first (the easy pace) and re-planned as the varied ones slow down, so
    that it ends at 1/6 of the peak after 6; a new optimizer at the first of them, carried
    through the rest."""
    clock = [0.0]
    calls = []

    def fake_train(model, dataset, val, lr, epochs, run=None, stop_after=None, **kwargs):
        run = run or TrainingRun(run_dir=str(tmp_path))
        calls.append((round(lr, 9), run.epoch, epochs, run.optimizer_state))
        while run.epoch < epochs:
            clock[0] += 150 if "noise" in dataset.image_info[0] else 100
            run.epoch += 1
            run.history.append({"epoch": run.epoch, "loss": 1.0, "mrcnn_mask_loss": 0.5})
            if stop_after(run):
                break
        run.optimizer_state = {"after epoch": run.epoch}
        return run

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    monkeypatch.setattr(train_shapes, "TimeBudget", functools.partial(train_shapes.TimeBudget, clock=lambda: clock[0]))
    assert train_shapes.main(["--budget-minutes", "20", "--schedule", "linear", "--peak-lr", "9e-4",
                              "--late-epochs", "0"] + stub_scoring(tmp_path, monkeypatch)) == 0
    assert calls[0] == (3e-4, 0, 3, None)
    assert [c[:3] for c in calls[1:]] == [(round(9e-4 * f, 9), 3 + k, 4 + k)
                                          for k, f in enumerate((1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6))]
    assert [c[3] for c in calls[1:]] == [None] + [{"after epoch": e} for e in range(4, 9)]
    assert clock[0] == 1200
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["epochs_trained"] == {"base": 3, "linear": 6} and len(report["rates"]) == 9
    out = capsys.readouterr().out
    assert "3 epochs at lr 0.0003, then 6 with the rate falling linearly from 0.0009 to 0.00015" in out


@pytest.mark.parametrize("argv, masks", [([], 14), (["--mask-pool-size", "7"], 7)])
def test_widths_and_mask_size_reach_the_model_and_the_report(argv, masks, tmp_path, capsys, monkeypatch):
    seen = []

    def fake_train(model, dataset, val, lr, epochs, run=None, **kwargs):
        c = model.config
        seen.append((c.TOP_DOWN_PYRAMID_SIZE, model.fpn.fpn_c5p5.out_channels,
                     model.box_head.mrcnn_class_conv1.out_channels, c.MASK_POOL_SIZE, tuple(c.MASK_SHAPE)))
        return trained_to(run, epochs, tmp_path)

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    assert train_shapes.main(["--pyramid-size", "64", "--fc-size", "128"] + argv
                             + stub_scoring(tmp_path, monkeypatch)) == 0
    assert seen == [(64, 64, 128, masks, (2 * masks, 2 * masks))] * 4  # one per stage
    assert (f"TOP_DOWN_PYRAMID_SIZE 64, FPN_CLASSIF_FC_LAYERS_SIZE 128, MASK_POOL_SIZE {masks} "
            f"({2 * masks}x{2 * masks} masks);") in capsys.readouterr().out


@pytest.mark.parametrize("argv, expected", [([], (4, 100)), (["--batch-size", "8"], (8, 50)),
                                            (["--batch-size", "8", "--steps", "7"], (8, 7))])
def test_batch_size_reaches_the_config_and_keeps_an_epoch_at_400_images(argv, expected, tmp_path, capsys,
                                                                        monkeypatch):
    seen = []

    def fake_train(model, dataset, val, lr, epochs, run=None, **kwargs):
        seen.append((model.config.IMAGES_PER_GPU, model.config.STEPS_PER_EPOCH))
        return trained_to(run, epochs, tmp_path)

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    assert train_shapes.main(argv + stub_scoring(tmp_path, monkeypatch)) == 0
    assert seen == [expected] * 4
    assert f"{expected[1]} steps of {expected[0]} images each;" in capsys.readouterr().out
    for flag in ("--batch-size", "--mask-pool-size"):
        with pytest.raises(SystemExit):
            train_shapes.main([flag, "0"])
        assert f"{flag} must be at least 1, not 0" in capsys.readouterr().err


def test_set_reaches_the_config_and_the_report_and_bad_values_are_refused(tmp_path, capsys, monkeypatch):
    configs = []

    def fake_train(model, dataset, val, lr, epochs, run=None, **kwargs):
        configs.append((model.config.TRAIN_ROIS_PER_IMAGE, model.config.ROI_POSITIVE_RATIO))
        return trained_to(run, epochs, tmp_path)

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    common = stub_scoring(tmp_path, monkeypatch)
    argv = ["--set", "TRAIN_ROIS_PER_IMAGE=50", "--set", "ROI_POSITIVE_RATIO=0.2"]
    assert train_shapes.main(argv + common) == 0
    assert configs == [(50, 0.2)] * 4
    assert "TRAIN_ROIS_PER_IMAGE 50 (--set); ROI_POSITIVE_RATIO 0.2 (--set);" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["args"]["set"] == [["TRAIN_ROIS_PER_IMAGE", 50],
                                                                          ["ROI_POSITIVE_RATIO", 0.2]]
    for bad, message in (("ROIS=50", "unknown config attributes: ROIS"), ("TRAIN_ROIS_PER_IMAGE", "NAME=VALUE"),
                         ("ROI_POSITIVE_RATIO=0", "ROI_POSITIVE_RATIO must lie in (0, 1]")):
        with pytest.raises(SystemExit):
            train_shapes.main(["--set", bad] + common)
        assert message in capsys.readouterr().err


def test_eval_max_dim_molds_the_held_out_sets_only_and_bad_sizes_are_refused(tmp_path, capsys, monkeypatch):
    """Scoring molds at --eval-max-dim (default 192, the OOD set's longest side); the model's
    config is restored after it, and a size the backbone cannot take is refused before training."""
    scored, trained = [], []

    def fake_evaluate(model, data, limit=None):
        scored.append((model.config.IMAGE_MAX_DIM, model.config.DETECTION_MIN_CONFIDENCE))
        return Evaluation(2, STATS, STATS, 0.5)

    def fake_train(model, dataset, val, lr, epochs, run=None, **kwargs):
        trained.append(model.config.IMAGE_MAX_DIM)
        return trained_to(run, epochs, tmp_path)

    monkeypatch.setattr(train_shapes, "train_model", fake_train)
    common = stub_scoring(tmp_path, monkeypatch, fake_evaluate)
    assert train_shapes.main(common) == 0
    assert train_shapes.main(common + ["--eval-max-dim", "256"]) == 0
    assert trained == [128] * 8 and scored == [(192, 0.0)] * 2 + [(256, 0.0)] * 2  # two runs of four stages
    out = capsys.readouterr().out
    assert "Evaluated (float32, IMAGE_MAX_DIM 192)" in out and "--set IMAGE_MAX_DIM=256" in out
    assert json.loads((tmp_path / "r.json").read_text())["args"]["eval_max_dim"] == 256
    with pytest.raises(SystemExit):
        train_shapes.main(common + ["--eval-max-dim", "100"])
    assert "IMAGE_MAX_DIM must be a multiple of 64" in capsys.readouterr().err and trained == [128] * 8
    model = types.SimpleNamespace(config=ShapesConfig())
    train_shapes.score_held_out(model, train_shapes.held_out_sets(2, 128, str(tmp_path / "ood")), 2, 192)
    assert scored[-1] == (192, 0.0) and model.config == ShapesConfig()  # restored for what comes after
