"""Exceptions raised by seta_stream.

Every error a user can cause (a bad shard, a stale manifest, a ledger of another
version) is a :class:`SetaStreamError` whose message is one line that names the
thing at fault, so the CLI can print it without a traceback.
"""

from __future__ import annotations


class SetaStreamError(Exception):
    """Base class for errors that the CLI reports as one line."""


class ShardError(SetaStreamError):
    """A shard cannot be read as webdataset would read it.

    Attributes:
        shard: The shard's name (or URL when no name is known yet).
        offset: Byte offset in the (uncompressed) tar stream where the problem
            was found, or None when it does not apply (missing file).
        reason: The problem, without the shard and offset.
    """

    def __init__(self, shard: str, reason: str, offset: int | None = None) -> None:
        self.shard = shard
        self.reason = reason
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"shard {shard}{where}: {reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None]]:
        return (ShardError, (self.shard, self.reason, self.offset))


class LedgerError(SetaStreamError):
    """The ledger is missing, of another schema version, or inconsistent."""


class ManifestError(SetaStreamError):
    """A manifest is missing, partial, or belongs to another ledger or run."""


class RunError(SetaStreamError):
    """A run directory, a rank, or the training loop broke a contract."""
