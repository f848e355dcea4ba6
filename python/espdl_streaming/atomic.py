"""Write files through a temporary file and a rename (standard library only: the build cache and the lock
replay outputs with it without importing numpy, torch or esp-ppq)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(files: dict[Path, bytes]) -> list[Path]:
    """Write every file through a temp file + rename; leave files whose content is unchanged untouched.

    All temp files are written before any rename, so a failure while writing leaves every
    earlier output as it was.  Returns the paths actually (re)written.
    """
    staged: list[tuple[Path, Path]] = []
    mode = 0o666 & ~_umask()
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_file() and path.read_bytes() == data:
                continue
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
            staged.append((Path(tmp), path))
        for tmp_path, path in staged:
            os.replace(tmp_path, path)
    finally:
        for tmp_path, _ in staged:
            if tmp_path.exists():
                tmp_path.unlink()
    return [p for _, p in staged]
