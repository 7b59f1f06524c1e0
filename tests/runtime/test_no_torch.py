"""The runtime must not import torch or model (it runs on a Jetson without them)."""

import pkgutil
import subprocess
import sys

import runtime


def test_runtime_imports_without_torch():
    modules = sorted(m.name for m in pkgutil.iter_modules(runtime.__path__, "runtime."))
    assert {"runtime.detector", "runtime.trt_runtime", "runtime.video", "runtime.detect"} <= set(modules)
    code = (f"import sys, importlib\nfor name in {modules!r}: importlib.import_module(name)\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'model'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
