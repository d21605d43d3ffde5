"""Atomic file writes: a temporary file beside the target, flushed to disk, then renamed over
it, so a crash mid-write leaves the old file or the new one, never a damaged one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import: os.umask is process-wide, not thread-safe


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """write(file) fills a temporary file that then replaces `path` (its folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; the file is not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
