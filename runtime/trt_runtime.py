"""Run a TensorRT engine built by runtime.trt_build (``python -m export.to_trt``).

Shapes: B the engine's batch, H, W its input size, K detection slots.

Torch-free: needs tensorrt (JetPack, or NVIDIA's pip index), cuda-python and numpy.
Buffers are allocated once per engine: page-locked host memory and device memory for
every input and output, bound by tensor name; each ``infer`` copies the inputs in,
runs on one CUDA stream and copies the outputs back.

The TensorRT API is told apart by feature:
- the name-based tensor API (``num_io_tensors``, ``get_tensor_name/mode/shape/dtype``,
  ``set_tensor_address``, ``execute_async_v3``): TensorRT 8.5 and later, the only one
  in 10.x and 11.x;
- the binding-index API (``num_bindings``, ``get_binding_*``, ``execute_async_v2``):
  used where the tensor API is missing.
tests/runtime/test_trt_conformance.py drives this file through stand-ins generated from
the real bindings of TensorRT 10.3, 10.16 and 11.4; see the README for what that proves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from runtime.cuda_api import Cuda, CudaError, gpu_description, host_array
from runtime.detector import Detector, check_io_names, check_model_path
from runtime.integrity import check_file_hash
from runtime.model_info import INPUT_NAMES, ModelFileError
from runtime.trt_build import TensorRTUnavailableError, check_engine_compatible, metadata_path, read_metadata

# TensorRT DataType names -> numpy (by name: members differ between versions)
DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT32": np.int32, "INT64": np.int64, "BOOL": np.bool_,
          "INT8": np.int8, "UINT8": np.uint8}


@dataclass
class IOTensor:
    """One engine input or output: pinned host array [shape] and a device buffer of the same size."""

    name: str
    is_input: bool
    shape: Tuple[int, ...]
    dtype: np.dtype
    host_pointer: int
    device: int
    host: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.host.nbytes


def import_tensorrt(engine_path: str):
    try:
        import tensorrt
    except (ImportError, OSError) as exc:  # OSError: the bindings are there, libnvinfer is not
        raise TensorRTUnavailableError(
            f"{engine_path}: TensorRT is not available here ({exc}). An engine runs only where TensorRT and the GPU "
            f"it was built for are (JetPack on a Jetson, NVIDIA's pip index on a server); elsewhere open the ONNX "
            f"file with runtime.open_model instead") from exc
    return tensorrt


class TrtDetector(Detector):
    """A TensorRT engine with its ``<engine>.json``; see the module docstring.

    trt, cuda: the tensorrt module and a runtime.cuda_api.Cuda (defaults: the installed
    ones; the tests pass stand-ins)."""

    def __init__(self, path: str, trt=None, cuda: Optional[Cuda] = None):
        check_model_path(path)
        read_metadata(path)  # a missing or broken <engine>.json is the first thing to report
        trt = trt or import_tensorrt(path)
        self.cuda = cuda or Cuda()
        self.stream: Optional[int] = None
        self.tensors: List[IOTensor] = []
        gpu = gpu_description(self.cuda)
        if gpu is None:
            raise CudaError(f"{path}: no usable CUDA device here ({self._cuda_problem()}); a TensorRT engine needs "
                            f"the GPU it was built for")
        self.metadata = check_engine_compatible(path, trt.__version__, gpu)
        self.info = self.metadata.model_info(path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self._logger, "")  # ROIAlign_TRT, EfficientNMS_TRT
        self._runtime = trt.Runtime(self._logger)
        check_file_hash(path, self.metadata.engine_sha256, metadata_path(path))
        with open(path, "rb") as f:
            self.engine = self._runtime.deserialize_cuda_engine(f.read())
        if self.engine is None:
            raise ModelFileError(f"{path}: TensorRT {trt.__version__} could not deserialize the engine (corrupt file, "
                                 f"or a plugin missing); rebuild it with python -m export.to_trt")
        self.context = self.engine.create_execution_context()
        self.tensor_api = hasattr(self.engine, "num_io_tensors") and hasattr(self.context, "execute_async_v3")
        self.stream = self.cuda.stream()
        self._allocate(trt)
        check_io_names(path, [t.name for t in self.tensors if t.is_input],
                       [t.name for t in self.tensors if not t.is_input])
        self.backend = (f"tensorrt {trt.__version__} {self.metadata.precision} on {gpu['gpu_name']} "
                        f"({'tensor' if self.tensor_api else 'binding'} API)")

    def _cuda_problem(self) -> str:
        try:
            return f"{self.cuda.device_count()} devices"
        except CudaError as exc:
            return str(exc)

    # ------------------------------------------------------------------ buffers
    def _describe_io(self, trt) -> List[Tuple[str, bool, Tuple[int, ...], object]]:
        """(name, is input, shape, TensorRT dtype) of every I/O tensor; a dynamic batch
        dimension is set to the model's batch first, so output shapes are concrete."""
        engine, context, batch = self.engine, self.context, self.info.batch_size
        if self.tensor_api:
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = {n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT}
            for name in inputs:
                shape = tuple(engine.get_tensor_shape(name))
                if -1 in shape:
                    context.set_input_shape(name, (batch, *shape[1:]))
            return [(n, n in inputs, tuple(context.get_tensor_shape(n)), engine.get_tensor_dtype(n)) for n in names]
        count = engine.num_bindings
        for index in range(count):
            shape = tuple(engine.get_binding_shape(index))
            if engine.binding_is_input(index) and -1 in shape:
                context.set_binding_shape(index, (batch, *shape[1:]))
        return [(engine.get_binding_name(i), engine.binding_is_input(i), tuple(context.get_binding_shape(i)),
                 engine.get_binding_dtype(i)) for i in range(count)]

    def _allocate(self, trt) -> None:
        for name, is_input, shape, trt_dtype in self._describe_io(trt):
            dtype = DTYPES.get(getattr(trt_dtype, "name", str(trt_dtype)))
            if dtype is None or any(d < 0 for d in shape):
                raise ModelFileError(f"engine tensor {name!r} has type {trt_dtype} and shape {shape}, which this "
                                     f"runtime does not handle")
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            host_pointer = self.cuda.malloc_host(nbytes)
            tensor = IOTensor(name, is_input, shape, np.dtype(dtype), host_pointer, 0,
                              host_array(host_pointer, shape, dtype))
            self.tensors.append(tensor)  # listed before the next call can fail, so close() frees it
            tensor.device = self.cuda.malloc(nbytes)
            if self.tensor_api and not self.context.set_tensor_address(name, tensor.device):
                raise ModelFileError(f"TensorRT refused the address of tensor {name!r}")
        self.bindings = [t.device for t in self.tensors]  # binding order (binding-index API)

    # ------------------------------------------------------------------ running
    def infer(self, images: np.ndarray, windows: np.ndarray) -> Dict[str, np.ndarray]:
        feeds = dict(zip(INPUT_NAMES, (images, windows)))
        for tensor in self.tensors:
            if tensor.is_input:
                np.copyto(tensor.host, feeds[tensor.name], casting="same_kind")  # float32 -> fp16 inputs too
                self.cuda.copy_to_device(tensor.device, tensor.host_pointer, tensor.nbytes, self.stream)
        if self.tensor_api:
            ok = self.context.execute_async_v3(self.stream)
        else:
            ok = self.context.execute_async_v2(self.bindings, self.stream)
        if not ok:
            raise RuntimeError("TensorRT could not enqueue the engine (see its log above)")
        for tensor in self.tensors:
            if not tensor.is_input:
                self.cuda.copy_to_host(tensor.host_pointer, tensor.device, tensor.nbytes, self.stream)
        self.cuda.synchronize(self.stream)
        return {t.name: t.host.astype(np.float32 if t.dtype == np.float16 else t.dtype)  # a copy: buffers are reused
                for t in self.tensors if not t.is_input}

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: CUDA may already be gone
            pass

    def close(self) -> None:
        for tensor in getattr(self, "tensors", ()):
            if tensor.device:
                self.cuda.free(tensor.device)
            self.cuda.free_host(tensor.host_pointer)
        self.tensors = []
        if getattr(self, "stream", None) is not None:
            self.cuda.destroy_stream(self.stream)
            self.stream = None
        self.context = self.engine = None
