"""A stand-in for cuda-python's runtime module, for running the TensorRT detector here.

Host memory plays device memory: cudaMalloc hands out numpy buffers and cudaMemcpyAsync
copies bytes between addresses. Where cuda-python is installed and no GPU answers (as
on every machine of this project), each call is first made to the real function with
the same arguments: a call the real function refuses (argument count or type) raises
there, so it fails here too; the real call itself only returns "no driver".
Allocations are counted so tests can check that ``close()`` frees everything.
"""

from __future__ import annotations

import ctypes
import enum
import types
from typing import Dict

import numpy as np

from runtime.cuda_api import import_cudart


def real_cudart():
    """cuda-python's runtime module when it is installed and there is no GPU, else None."""
    try:
        real = import_cudart()
    except Exception:
        return None
    error = real.cudaGetDeviceCount()[0]
    return real if int(error) != 0 else None  # on a GPU machine, do not call with made-up pointers


class FakeCudart:
    """The subset of cuda.bindings.runtime that runtime.cuda_api uses."""

    def __init__(self, compute_capability=(8, 7), gpu_name=b"Stand-in GPU"):
        self.real = real_cudart()
        if self.real is not None:
            self.cudaMemcpyKind = self.real.cudaMemcpyKind
            self.success = self.real.cudaError_t.cudaSuccess
        else:
            self.cudaMemcpyKind = enum.IntEnum("cudaMemcpyKind", {"cudaMemcpyHostToDevice": 1,
                                                                  "cudaMemcpyDeviceToHost": 2})
            self.success = 0
        self.properties = types.SimpleNamespace(name=gpu_name, major=compute_capability[0],
                                                minor=compute_capability[1])
        self.buffers: Dict[int, np.ndarray] = {}  # address -> backing array, device and pinned alike
        self.copies = []  # (kind, nbytes, stream)
        self.streams = set()

    def _validate(self, name, *args):
        if self.real is not None:
            getattr(self.real, name)(*args)  # raises TypeError on arguments the real one refuses

    def _alloc(self, nbytes: int) -> int:
        array = np.zeros(int(nbytes), np.uint8)
        self.buffers[array.ctypes.data] = array
        return array.ctypes.data

    def cudaGetErrorString(self, error):
        return self.success, b"stand-in error"

    def cudaGetDeviceCount(self):
        self._validate("cudaGetDeviceCount")
        return self.success, 1

    def cudaGetDeviceProperties(self, device):
        self._validate("cudaGetDeviceProperties", device)
        return self.success, self.properties

    def cudaStreamCreate(self):
        self._validate("cudaStreamCreate")
        stream = 0x5000 + len(self.streams) + 1
        self.streams.add(stream)
        return self.success, stream

    def cudaStreamDestroy(self, stream):
        self._validate("cudaStreamDestroy", stream)
        self.streams.remove(stream)
        return (self.success,)

    def cudaMalloc(self, nbytes):
        self._validate("cudaMalloc", nbytes)
        return self.success, self._alloc(nbytes)

    def cudaMallocHost(self, nbytes):
        self._validate("cudaMallocHost", nbytes)
        return self.success, self._alloc(nbytes)

    def cudaFree(self, pointer):
        self._validate("cudaFree", pointer)
        del self.buffers[pointer]
        return (self.success,)

    def cudaFreeHost(self, pointer):
        self._validate("cudaFreeHost", pointer)
        del self.buffers[pointer]
        return (self.success,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):
        self._validate("cudaMemcpyAsync", dst, src, nbytes, kind, stream)
        assert stream in self.streams, f"copy on unknown stream {stream}"
        for pointer in (dst, src):
            assert pointer in self.buffers and self.buffers[pointer].nbytes >= nbytes, "copy outside an allocation"
        ctypes.memmove(dst, src, nbytes)
        self.copies.append((kind, nbytes, stream))
        return (self.success,)

    def cudaStreamSynchronize(self, stream):
        self._validate("cudaStreamSynchronize", stream)
        return (self.success,)

    def read(self, pointer: int, shape, dtype) -> np.ndarray:
        """The contents of an allocation as an array (what a kernel would read)."""
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        return self.buffers[pointer][: count * dtype.itemsize].view(dtype).reshape(shape).copy()

    def write(self, pointer: int, array: np.ndarray) -> None:
        data = np.ascontiguousarray(array).view(np.uint8).ravel()
        self.buffers[pointer][: data.size] = data
