"""The few CUDA runtime calls the TensorRT detector needs, through cuda-python.

Why cuda-python and not PyCUDA: NVIDIA publishes it as wheels for x86-64 and aarch64
(nothing to compile, where PyCUDA builds against the CUDA toolkit on the Jetson), it is
what TensorRT 10's own Python samples use, and its calls are thin, typed wrappers of the
C runtime API, so what runs here is what the C++ samples do. It installs and imports on
a machine without a GPU (every call then returns cudaErrorInsufficientDriver or
cudaErrorNoDevice), which lets the tests check each call's arguments against the real
functions.

Every call returns (error, *values); :func:`call` raises :class:`CudaError` naming the
call and CUDA's message. Pointers are plain ints.
"""

from __future__ import annotations

import ctypes
from typing import Optional, Tuple

import numpy as np


class CudaError(RuntimeError):
    """A CUDA runtime call failed, or cuda-python is missing; the message says which and why."""


def import_cudart():
    """cuda-python's runtime module: ``cuda.bindings.runtime`` (12.x, 13.x) or ``cuda.cudart`` (11.8)."""
    try:
        from cuda.bindings import runtime
        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart
        return cudart
    except ImportError as exc:
        raise CudaError("running a TensorRT engine needs cuda-python: pip install 'mrcnn-edge[trt]' "
                        "(or pip install cuda-python; 11.8.x for JetPack 5's CUDA 11.4)") from exc


class Cuda:
    """The runtime calls used here, each checked. ``cudart``: the module (tests pass a stand-in)."""

    def __init__(self, cudart=None):
        self.rt = cudart if cudart is not None else import_cudart()

    def call(self, name: str, *args):
        """Call cudart.<name>(*args); return its values (None, one value or a tuple) or raise CudaError."""
        result = getattr(self.rt, name)(*args)
        error, values = result[0], result[1:]
        if int(error) != 0:
            _, message = self.rt.cudaGetErrorString(error)
            message = message.decode() if isinstance(message, bytes) else str(message)
            raise CudaError(f"{name} failed: {getattr(error, 'name', error)} ({message})")
        return values[0] if len(values) == 1 else (values or None)

    def device_count(self) -> int:
        return int(self.call("cudaGetDeviceCount"))

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        """(name, compute capability "major.minor") of a device."""
        props = self.call("cudaGetDeviceProperties", device)
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.strip("\x00 "), f"{props.major}.{props.minor}"

    def stream(self) -> int:
        return int(self.call("cudaStreamCreate"))

    def malloc(self, nbytes: int) -> int:
        return int(self.call("cudaMalloc", max(nbytes, 1)))

    def malloc_host(self, nbytes: int) -> int:
        """Page-locked host memory (fast, asynchronous copies)."""
        return int(self.call("cudaMallocHost", max(nbytes, 1)))

    def copy_to_device(self, device: int, host: int, nbytes: int, stream: int) -> None:
        self.call("cudaMemcpyAsync", device, host, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream)

    def copy_to_host(self, host: int, device: int, nbytes: int, stream: int) -> None:
        self.call("cudaMemcpyAsync", host, device, nbytes, self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream)

    def synchronize(self, stream: int) -> None:
        self.call("cudaStreamSynchronize", stream)

    def free(self, device: int) -> None:
        self.call("cudaFree", device)

    def free_host(self, host: int) -> None:
        self.call("cudaFreeHost", host)

    def destroy_stream(self, stream: int) -> None:
        self.call("cudaStreamDestroy", stream)


def host_array(pointer: int, shape: Tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A numpy array over ``pointer`` (page-locked memory this process owns)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = (ctypes.c_uint8 * max(nbytes, 1)).from_address(pointer)
    return np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)


def gpu_description(cuda: Optional[Cuda] = None):
    """{"gpu_name", "compute_capability"} of device 0, or None when CUDA does not answer."""
    try:
        cuda = cuda or Cuda()
        name, capability = cuda.device_properties(0)
        return {"gpu_name": name, "compute_capability": capability}
    except CudaError:
        return None
