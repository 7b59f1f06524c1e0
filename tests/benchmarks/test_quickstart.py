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
