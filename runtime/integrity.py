"""Content hashes that travel with the model files, so a damaged file is an error and
never a quietly different model.

- ONNX files (exports, fp16 and INT8 models): the metadata entry ``mrcnn.content_sha256``
  holds the SHA-256 of the file's own bytes with that entry's value read as 64 zeros.
  :func:`save_onnx` writes it, :func:`check_onnx_file` checks it (a byte search, no parse).
- TensorRT engines: ``<engine>.json`` holds ``engine_sha256``, the SHA-256 of the engine
  file (runtime.trt_build writes it, runtime.trt_runtime checks it before deserializing).
- PyTorch checkpoints: model.weights.checkpoint hashes the weights it saves (it needs torch).

A file written before these hashes existed has none: it loads, with a warning.
Torch-free: the runtime uses this module on a Jetson.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
from typing import Callable, Optional

from runtime.files import atomic_path
from runtime.model_info import PREFIX, ModelFileError

log = logging.getLogger(__name__)

ONNX_HASH_KEY = PREFIX + "content_sha256"
PLACEHOLDER = b"0" * 64


class DamagedFileError(ModelFileError):
    """A file whose content does not match the hash it carries; names the file."""


def sha256_file(path: str) -> str:
    """Hex SHA-256 of the file at ``path`` (read in 16 MB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def save_onnx(graph, path: str, check: Optional[Callable[[str], None]] = None) -> None:
    """Write the onnx ModelProto ``graph`` to ``path`` atomically, stamped with its content
    hash (any hash it already carried, e.g. copied from the model it was made from, is
    replaced). ``check(tmp_path)`` runs on the written file before it takes ``path``'s place."""
    for index in reversed(range(len(graph.metadata_props))):
        if graph.metadata_props[index].key == ONNX_HASH_KEY:
            del graph.metadata_props[index]
    graph.metadata_props.add(key=ONNX_HASH_KEY, value=PLACEHOLDER.decode())
    data = bytearray(graph.SerializeToString())
    start = _hash_value_offset(data)
    data[start:start + 64] = hashlib.sha256(data).hexdigest().encode()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
        if check is not None:
            check(tmp)


def check_onnx_file(path: str) -> bool:
    """Check the content hash of the ONNX file at ``path``: True when it matches, False
    (and a warning) when the file carries none; DamagedFileError when it does not match."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            raise ModelFileError(f"{path}: the file is empty")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            key = data.rfind(ONNX_HASH_KEY.encode())
            if key < 0:
                log.warning("%s carries no content hash (exported before hashes were added); its integrity "
                            "is not checked. Export it again to add one.", path)
                return False
            try:
                start = _hash_value_offset(data, key)
            except ValueError:
                raise DamagedFileError(_damaged(path, "its content hash entry is unreadable")) from None
            stored = bytes(data[start:start + 64])
            view = memoryview(data)
            try:
                digest = hashlib.sha256(view[:start])
                digest.update(PLACEHOLDER)
                digest.update(view[start + 64:])
            finally:
                view.release()
    if digest.hexdigest().encode() != stored:
        raise DamagedFileError(_damaged(path, "its content does not match the SHA-256 it was written with"))
    return True


def check_file_hash(path: str, expected: str, recorded_in: str) -> bool:
    """Compare the SHA-256 of ``path`` with ``expected`` (recorded in ``recorded_in``):
    True on a match, False (and a warning) when nothing was recorded, else DamagedFileError."""
    if not expected:
        log.warning("%s records no hash of %s (written before hashes were added); its integrity is not checked",
                    recorded_in, path)
        return False
    if sha256_file(path) != expected:
        raise DamagedFileError(_damaged(path, f"its SHA-256 differs from the one recorded in {recorded_in}"))
    return True


def _hash_value_offset(data, key_at: int = -1) -> int:
    """Offset of the 64 hash characters in serialized ONNX bytes: the metadata entry is
    the protobuf message {1: key, 2: value}, so the value follows the key as the bytes
    0x12 0x40 (field 2, length 64) and then the characters."""
    key = ONNX_HASH_KEY.encode()
    if key_at < 0:
        key_at = data.rfind(key)
    start = key_at + len(key) + 2
    if key_at < 0 or bytes(data[start - 2:start]) != b"\x12\x40" or len(data) < start + 64:
        raise ValueError("content hash entry not found")
    return start


def _damaged(path: str, why: str) -> str:
    return (f"{path} is damaged: {why} (a truncated copy, a disk or transfer error, or an edit); "
            f"copy or export it again")
