"""The runtime must not import torch or model (it runs on a Jetson without them)."""

import subprocess
import sys


def test_runtime_imports_without_torch():
    code = ("import sys, runtime, runtime.compare, runtime.files\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'model'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
