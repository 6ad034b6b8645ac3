"""Files of a run: arrays (.npz artifacts), figures, text files and store-wide pages, each written
atomically and recorded with its checksum (a base of `Store`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from phenolab.store.artifacts import (
    array_info,
    checked_arrays,
    read_npz,
    safe_file_name,
    sha256_file,
    write_atomic,
    write_npz,
)
from phenolab.store.connection import StoreConnection, _run_id
from phenolab.store.encoding import from_json, iso, to_json, utc_now
from phenolab.store.errors import StoreError

FIGURE_DPI = 110


class RunFiles(StoreConnection):
    """Artifacts, figures and pages of the runs (mixed into `Store`)."""

    def save_artifact(self, run_id: int, name: str, arrays: Mapping[str, np.ndarray]) -> Path:
        """Save `arrays` as one uncompressed .npz; replaces an earlier artifact of that name."""
        checked = checked_arrays(arrays)
        rel = Path("artifacts", str(_run_id(run_id)), safe_file_name(name, ".npz"))
        return self._save_file(run_id, name, "arrays", rel, lambda f: write_npz(f, checked), array_info(checked))

    def load_artifact(self, run_id: int, name: str, *, verify: bool = True) -> dict[str, np.ndarray]:
        """The arrays saved under `name`; StoreError if missing or (with `verify`) changed on disk."""
        with self._reading() as conn:
            self._require_run(conn, run_id)
            row = conn.execute(
                "SELECT path, sha256 FROM artifacts WHERE run_id = ? AND kind = 'arrays' AND name = ?",
                (_run_id(run_id), name),
            ).fetchone()
        if row is None:
            raise StoreError(f"run {run_id} has no artifact {name!r} in {self.path}")
        file = self.root / row["path"]
        if not file.is_file():
            raise StoreError(f"artifact {name!r} of run {run_id}: file {file} is missing")
        if verify and sha256_file(file) != row["sha256"]:
            raise StoreError(f"artifact {name!r} of run {run_id}: checksum mismatch in {file} "
                             "(the file changed after it was saved)")
        return read_npz(file)

    def artifacts(self, run_id: int) -> list[dict[str, Any]]:
        """The run's artifacts: name, kind, path (relative to root), sha256, size_bytes, arrays, created."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT name, kind, path, sha256, size_bytes, arrays, created FROM artifacts "
                "WHERE run_id = ? ORDER BY id",
                (_run_id(run_id),),
            ).fetchall()
        return [{**dict(r), "arrays": from_json(r["arrays"])} for r in rows]

    def save_figure(self, run_id: int, name: str, fig: Any) -> Path:
        """Save a matplotlib Figure as ``runs/<run_id>/<name>.png`` (dpi 110)."""
        rel = Path("runs", str(_run_id(run_id)), safe_file_name(name, ".png"))
        return self._save_file(run_id, name, "figure", rel, lambda f: fig.savefig(f, format="png", dpi=FIGURE_DPI))

    def save_text(self, run_id: int, name: str, text: str) -> Path:
        """Save `text` (UTF-8) as ``runs/<run_id>/<name>``, e.g. 'report.html'."""
        data = text.encode("utf-8")
        rel = Path("runs", str(_run_id(run_id)), safe_file_name(name))
        return self._save_file(run_id, name, "file", rel, lambda f: f.write(data))

    def save_page(self, name: str, text: str) -> Path:
        """Save `text` (UTF-8) as ``<root>/<name>``, a page about the whole store (e.g. 'index.html'); not recorded."""
        if self.readonly:
            raise StoreError(f"the store {self.path} is opened read-only")
        dest = self.root / safe_file_name(name)
        data = text.encode("utf-8")
        write_atomic(dest, lambda f: f.write(data))
        return dest

    def run_dir(self, run_id: int) -> Path:
        """``<root>/runs/<run_id>``, created unless the store is read-only."""
        with self._reading() as conn:
            self._require_run(conn, run_id)
        path = self.root / "runs" / str(_run_id(run_id))
        if not self.readonly:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def _save_file(self, run_id: int, name: str, kind: str, rel: Path, write: Any,
                   arrays: dict[str, Any] | None = None) -> Path:
        if self.readonly:
            raise StoreError(f"the store {self.path} is opened read-only")
        with self._reading() as conn:
            self._require_run(conn, run_id)
        dest = self.root / rel
        digest, size = write_atomic(dest, write)
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO artifacts (run_id, kind, name, path, sha256, size_bytes, arrays, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, kind, name) DO UPDATE SET "
                "path = excluded.path, sha256 = excluded.sha256, size_bytes = excluded.size_bytes, "
                "arrays = excluded.arrays, created = excluded.created",
                (_run_id(run_id), kind, name, rel.as_posix(), digest, size, to_json(arrays), iso(utc_now())),
            )
        return dest
