"""The real TensorRT Python API of a given version, read on a machine without TensorRT.

NVIDIA publishes the Python bindings alone on PyPI (``tensorrt-cu12-bindings``, the
package ``tensorrt_bindings``). Their ``tensorrt.so`` links libnvinfer, libnvonnxparser
and libnvinfer_plugin but takes only nine C entry points from them; stub libraries that
export those nine (returning NULL / 0) let the module import: every class, enum member
and method signature (pybind11 writes it into each ``__doc__``) is the real one, while
anything that would reach the native library fails (``trt.Builder(logger)`` raises).

``read_api(version)`` downloads the wheel once into a cache, builds the stubs with the
machine's C compiler and returns a JSON-able description of the module, extracted in a
subprocess (the stubs must be on LD_LIBRARY_PATH before the process starts).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

# TensorRT 10.3 is JetPack 6.1/6.2's; 10.16 the newest 10.x and 11.4 the newest 11.x on PyPI.
VERSIONS = ("10.3.0", "10.16.1.11", "11.4.0.106")
CACHE = Path(os.environ.get("MRCNN_TRT_BINDINGS_CACHE", Path.home() / ".cache" / "mrcnn-edge" / "tensorrt-bindings"))

ENTRY_POINTS = ("createInferBuilder_INTERNAL", "createInferRuntime_INTERNAL", "createInferRefitter_INTERNAL",
                "createNvOnnxParser_INTERNAL", "createNvOnnxParserRefitter_INTERNAL", "getPluginRegistry",
                "getBuilderPluginRegistry", "initLibNvInferPlugins", "getNvOnnxParserVersion")
LIBRARIES = ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin")


class BindingsUnavailable(RuntimeError):
    """The wheel could not be downloaded (offline, no cache) or the stubs not built."""


def fetch_bindings(version: str) -> Path:
    """The unpacked wheel of ``version`` (downloaded once into CACHE)."""
    folder = CACHE / version
    if (folder / "tensorrt_bindings" / "__init__.py").is_file():
        return folder
    download = CACHE / "wheels"
    download.mkdir(parents=True, exist_ok=True)
    wheels = list(download.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if not wheels:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                               f"tensorrt-cu12-bindings=={version}", "-d", str(download)],
                              capture_output=True, text=True, timeout=300)
        wheels = list(download.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
        if done.returncode or not wheels:
            raise BindingsUnavailable(f"pip download tensorrt-cu12-bindings=={version} failed: "
                                      f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    partial = CACHE / f".{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(partial)
    os.replace(partial, folder)
    return folder


def build_stubs(major: int) -> Path:
    """A folder with the three stub libraries for TensorRT ``major`` (libnvinfer.so.N, ...)."""
    folder = CACHE / "stubs"
    if all((folder / f"{lib}.so.{major}").is_file() for lib in LIBRARIES):
        return folder
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise BindingsUnavailable("no C compiler (gcc) to build the stub libraries")
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "stub.c"
    source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in ENTRY_POINTS))
    for lib in LIBRARIES:
        target = folder / f"{lib}.so.{major}"
        subprocess.run([compiler, "-shared", "-fPIC", "-o", str(target) + ".tmp", str(source)], check=True)
        os.replace(str(target) + ".tmp", target)
    return folder


def read_api(version: str) -> dict:
    """The API description of TensorRT ``version`` (see extract() below for its layout)."""
    folder = fetch_bindings(version)
    stubs = build_stubs(int(version.split(".")[0]))
    env = {**os.environ, "PYTHONPATH": str(folder), "LD_LIBRARY_PATH": str(stubs)}
    done = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode:
        raise BindingsUnavailable(f"tensorrt_bindings {version} did not import with the stubs:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


# ---------------------------------------------------------------- run inside the subprocess
def signature_lines(name: str, doc: str) -> list:
    """pybind11 signatures from a docstring: the first line, or each numbered overload."""
    lines = (doc or "").splitlines()
    if len(lines) > 1 and lines[1].strip() == "Overloaded function.":
        prefix = f"{name}("
        return [line.split(". ", 1)[1] for line in lines if line[:1].isdigit() and ". " in line
                and line.split(". ", 1)[1].startswith(prefix)]
    return [lines[0]] if lines and lines[0].startswith(name + "(") else []


def extract(trt) -> dict:
    """{"version", "enums": {qualname: {member: value}}, "functions": {name: [signature]},
    "classes": {qualname: {"bases": [...], "init": [signature] or None,
    "methods": {name: [signature]}, "properties": {name: {"get": signature, "set": signature or None}},
    "enum_types": {attr: enum qualname}, "enum_members": {attr: [enum qualname, member]}}}}"""
    import inspect

    module = trt.__name__ + ".tensorrt"
    enums, classes, functions = {}, {}, {}

    def is_enum(value):
        return isinstance(value, type) and isinstance(getattr(value, "__members__", None), dict)

    def add_enum(value):
        enums[value.__qualname__] = {k: int(v) for k, v in value.__members__.items()}
        return value.__qualname__

    def add_class(cls):
        entry = {"bases": [b.__qualname__ for b in cls.__mro__[1:] if b.__module__ == module],
                 "init": None, "methods": {}, "properties": {}, "enum_types": {}, "enum_members": {}}
        owner = next((b for b in cls.__mro__ if b.__module__ == module and "__init__" in b.__dict__), None)
        if owner is not None:  # pybind11 classes without a constructor have none of their own
            entry["init"] = signature_lines("__init__", owner.__dict__["__init__"].__doc__) or None
        for attr in dir(cls):
            if attr.startswith("__") and attr not in ("__len__", "__getitem__", "__iter__"):
                continue
            value = inspect.getattr_static(cls, attr)
            if isinstance(value, property):
                getter = (value.fget.__doc__ or "").strip().splitlines()[:1] if value.fget else []
                setter = (value.fset.__doc__ or "").strip().splitlines()[:1] if value.fset else None
                entry["properties"][attr] = {"get": getter[0] if getter else None,  # "(arg0: X) -> T"
                                             "set": None if setter is None else (setter[0] if setter else "")}
            elif is_enum(value):
                entry["enum_types"][attr] = add_enum(value)
            elif is_enum(type(value)) and hasattr(value, "name"):
                entry["enum_members"][attr] = [add_enum(type(value)), value.name]
            elif callable(value) or isinstance(value, (staticmethod, classmethod)):
                target = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                lines = signature_lines(attr, getattr(target, "__doc__", ""))
                if not lines and inspect.isfunction(target):  # written in Python (tensorrt's __init__.py)
                    lines = [attr + str(inspect.signature(target))]
                entry["methods"][attr] = lines
        classes[cls.__qualname__] = entry

    for name in dir(trt):
        value = getattr(trt, name)
        if name.startswith("_"):
            continue
        if is_enum(value):
            add_enum(value)
        elif isinstance(value, type):
            add_class(value)
        elif callable(value):
            lines = signature_lines(name, getattr(value, "__doc__", ""))
            if not lines and inspect.isfunction(value):
                lines = [name + str(inspect.signature(value))]
            functions[name] = lines
    return {"version": trt.__version__, "module": module, "enums": enums, "classes": classes, "functions": functions}


if __name__ == "__main__":
    import tensorrt_bindings

    json.dump(extract(tensorrt_bindings), sys.stdout)
