"""The quickstart's own logic (the whole run is CI's, after the tests)."""

from benchmarks import common, quickstart


def test_help_and_bf16_probe(capsys):
    try:
        quickstart.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "--train-minutes" in out and "--max-int8-drop" in out
    assert isinstance(common.has_bf16(), bool)


def test_epoch_plan_fills_the_budget_but_never_drops_below_the_floor():
    # a fast machine: 9 minutes of 50-s epochs, more than the floor
    assert quickstart.plan_epochs(9, 50, 8) == (10, 2, 10)
    # a slow one (2026-12-06's CI: 6 epochs fit and scored mask AP50 0.595): the floor holds
    assert quickstart.plan_epochs(9, 80, 8) == (8, 1, 6)
    # a user who asks for a quick, weak run gets it; never fewer than 2 (one per rate)
    assert quickstart.plan_epochs(5, 80, 2) == (3, 1, 3)
    assert quickstart.plan_epochs(0.1, 80, 0) == (2, 1, 0)
