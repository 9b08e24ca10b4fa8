"""Atomic file writes: write to a temporary name in the same directory, fsync, rename."""

from __future__ import annotations

import os


def temp_name(path: str) -> str:
    """A temporary name beside ``path``, unique to this process."""
    return f"{path}.tmp-{os.getpid()}"


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    tmp = temp_name(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def commit_file(tmp: str, path: str) -> None:
    """fsync a fully written temporary file and rename it to ``path``."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
