"""Files beside the database: safe file names, atomic writes with sha256, and `.npz` arrays."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from phenolab.store.errors import StoreError

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_name(name: str, suffix: str = "") -> str:
    """A file name for artifact `name`, ending in `suffix` (added unless already there).

    Names made of letters, digits, '.', '_' and '-' are kept; any other name is sanitized and
    gets a short hash of the original, so that two different names never share a file.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"artifact name must be a non-empty string, got {name!r}")
    stem = name[: -len(suffix)] if suffix and name.endswith(suffix) else name
    if _SAFE.fullmatch(stem) and stem not in (".", ".."):
        return stem + suffix
    cleaned = _UNSAFE_CHARS.sub("_", stem).strip("._-")[:80] or "artifact"
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return f"{cleaned}-{digest}{suffix}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_atomic(dest: Path, write: Callable[[IO[bytes]], Any]) -> tuple[str, int]:
    """Write `dest` through a temporary file in its directory and `os.replace`; (sha256, size).

    Readers see the old file or the new one, never a partial one.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
        digest, size = sha256_file(tmp), tmp.stat().st_size
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return digest, size


def checked_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """`arrays` as a dict of numpy arrays; ValueError for bad keys or object arrays."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError("arrays must be a non-empty dict of name -> numpy array")
    result: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"array names must be non-empty strings, got {key!r}")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise ValueError(f"array {key!r} has dtype {array.dtype}; object arrays cannot be stored without pickle")
        result[key] = array
    return result


def array_info(arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """For each array its shape and dtype, as recorded in the `artifacts` table."""
    return {k: {"shape": list(a.shape), "dtype": str(a.dtype)} for k, a in arrays.items()}


def write_npz(f: IO[bytes], arrays: Mapping[str, np.ndarray]) -> None:
    """An uncompressed `.npz` (what `np.savez` writes), without its keyword-name restrictions."""
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            with zf.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an `.npz` file, in the order they were written; StoreError if unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise StoreError(f"cannot read the arrays in {path}: {exc}") from None
