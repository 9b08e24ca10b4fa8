"""Small files written atomically (temporary name, fsync, rename) and read back with a version check."""

from __future__ import annotations

import json
import os
from typing import Any


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


def read_versioned_json(path: str, version: int, error: type[Exception]) -> dict[str, Any] | None:
    """A JSON document with ``schema_version == version``, or None if the file does not exist.

    Raises:
        error: the file is unreadable, not JSON, or of another schema version.
    """
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise error(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != version:
        found = doc.get("schema_version") if isinstance(doc, dict) else None
        raise error(f"{path} has schema version {found}; this seta-stream reads version {version}")
    return doc


def differing_fields(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of the fields whose values differ between two config dicts."""
    return sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
