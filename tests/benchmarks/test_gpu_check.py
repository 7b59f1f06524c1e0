"""benchmarks/gpu_check.py cannot run here (no GPU); its argument handling and the
no-GPU path can."""

import shutil

import pytest

from benchmarks import gpu_check


def test_dry_run_prints_the_plan(capsys):
    assert gpu_check.main(["--dry-run", "--precision", "fp16", "fp32", "--output", "r.json"]) == 0
    out = capsys.readouterr().out
    assert "4. build TensorRT engines (fp16, fp32)" in out and "(stdout, r.json)" in out and "model:" in out


def test_bad_arguments_stop_before_any_work(tmp_path, capsys):
    assert gpu_check.main(["--weights", str(tmp_path / "none.pt")]) == 2
    assert "none.pt: weights file not found" in capsys.readouterr().err
    assert gpu_check.main(["--precision", "int8"]) == 2
    assert "needs --int8-onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.main(["--precision", "int4"])


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has nvidia-smi")
def test_without_a_gpu_it_says_so(capsys):
    assert gpu_check.main([]) == 2
    assert "no NVIDIA GPU here" in capsys.readouterr().err
