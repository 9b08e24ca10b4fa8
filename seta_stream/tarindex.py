"""Fast tar index: list a shard's samples from its headers alone.

Local shards are memory-mapped and only their 512-byte headers are touched
(member data is skipped by offset arithmetic); shards that cannot be seeked
(``pipe:``, ``http(s)://``, compressed tars) are streamed. Members are grouped
into samples with webdataset's own rule (adjacent members with the same key,
suffixes lower-cased), so an index lists exactly the samples that
``wds.WebDataset`` yields, in the same order, with each sample's byte span.

Any bad checksum, truncated header or member, duplicate key or empty shard
raises :class:`~seta_stream.errors.ShardError` naming the shard and byte offset.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import mmap
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import numpy as np
from numpy.typing import NDArray

from .errors import ShardError
from .shards import ShardRef, http_fingerprint, local_fingerprint
from .tarheaders import BufferSource, Member, Source, StreamSource, TarFormatError, is_meta, list_members, split_key


@dataclass
class ShardIndex:
    """The samples of one shard, in stream order.

    Attributes:
        keys: Sample keys (``__key__``), in order.
        offsets: Byte offset of each sample's first header (int64).
        nbytes: Bytes from that header to the end of the sample's last member's
            padded data (int64).
        exts: Each sample's member extensions, comma-joined, in archive order.
        size: Bytes of tar stream read (uncompressed).
        seekable: True when offsets can be seeked to in the file as stored
            (a local, uncompressed tar).
        fingerprint: What identifies this version of the shard (see
            :func:`seta_stream.shards.probe_fingerprint`).
    """

    keys: list[str] = field(default_factory=list)
    offsets: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    nbytes: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    exts: list[str] = field(default_factory=list)
    size: int = 0
    seekable: bool = True
    fingerprint: str = ""

    def __len__(self) -> int:
        return len(self.keys)


def group_samples(members: list[Member]) -> tuple[list[str], list[int], list[int], list[str]]:
    """Group members into samples with webdataset's rule.

    Args:
        members: Output of :func:`list_members`.

    Returns:
        ``(keys, starts, ends, exts)``: per sample its key, the offset of its
        first header, the end of its last member's padded data, and its
        comma-joined extensions.

    Raises:
        TarFormatError: a suffix repeats inside one sample (webdataset raises
            "duplicate file name" there too), or a key repeats in the shard.
    """
    keys: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    exts: list[str] = []
    seen: dict[str, int] = {}
    key: str | None = None
    start = end = 0
    cur: list[str] = []
    for name, hoff, doff, size, _ in members:
        if name[:2] == "__" and is_meta(name):
            continue
        slash = name.rfind("/")
        dot = name.find(".", slash + 1)
        if dot > slash + 1:  # the common shape; split_key handles the rest
            prefix, suffix = name[:dot], name[dot + 1 :].lower()
        else:
            parts = split_key(name)
            if parts is None:
                continue
            prefix, suffix = parts[0], parts[1].lower()
        if prefix != key:
            if key is not None:
                keys.append(key)
                starts.append(start)
                ends.append(end)
                exts.append(",".join(cur))
            if prefix in seen:
                raise TarFormatError(f"duplicate key {prefix!r} (first seen at byte {seen[prefix]})", hoff)
            seen[prefix] = hoff
            key, start, cur = prefix, hoff, [suffix]
        elif suffix in cur:
            raise TarFormatError(f"duplicate file name {name!r} in sample {prefix!r}", hoff)
        else:
            cur.append(suffix)
        end = doff + ((size + 511) & -512)
    if key is not None:
        keys.append(key)
        starts.append(start)
        ends.append(end)
        exts.append(",".join(cur))
    return keys, starts, ends, exts


def _open_stream(ref: ShardRef) -> tuple[IO[bytes], Callable[[], None], Callable[[int], str]]:
    """Open a non-local shard for streaming: (stream, close, fingerprint(nbytes))."""
    url = ref.url
    if url.startswith("pipe:"):
        import subprocess

        proc = subprocess.Popen(url[5:], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = proc.stdout
        if out is None:  # pragma: no cover - Popen with PIPE always sets it
            raise ShardError(ref.name, "cannot start command")

        def close() -> None:
            out.close()
            rc = proc.wait()
            if rc != 0:
                err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
                raise ShardError(ref.name, f"command exited with status {rc}: {err[-200:]}")

        return out, close, lambda n: f"length={n}"
    resp = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - a shard URL the user gave
    headers = resp.headers
    return resp, resp.close, lambda n: http_fingerprint(headers.get("ETag"), headers.get("Content-Length"), n)


def _decompressor(head: bytes, f: IO[bytes]) -> IO[bytes] | None:
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f)
    if head[:3] == b"BZh":
        return bz2.BZ2File(f)
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(f)
    return None


class _Peeked:
    """A stream whose first bytes were already read (to sniff compression)."""

    def __init__(self, head: bytes, f: IO[bytes]) -> None:
        self._head = head
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._f.read(n)
        if n < 0:
            out, self._head = self._head, b""
            return out + self._f.read()
        out, self._head = self._head[:n], self._head[n:]
        return out


def _index_source(src: Source) -> ShardIndex:
    keys, starts, ends, exts = group_samples(list_members(src))
    if not keys:
        raise TarFormatError("shard holds no samples", 0)
    offsets = np.asarray(starts, dtype=np.int64)
    return ShardIndex(keys=keys, offsets=offsets, nbytes=np.asarray(ends, dtype=np.int64) - offsets, exts=exts)


def index_shard(ref: ShardRef) -> ShardIndex:
    """Index one shard.

    Args:
        ref: The shard; local files are memory-mapped, anything else streamed.

    Returns:
        The shard's samples in stream order.

    Raises:
        ShardError: missing or unreadable file, not a tar, corrupt or truncated,
            a duplicate key, or no samples. The message names the shard and the
            byte offset of the problem.
    """
    try:
        if ref.local_path is not None:
            return _index_local(ref, ref.local_path)
        stream, close, fingerprint = _open_stream(ref)
        try:
            idx = _index_stream(ref, stream)
        finally:
            close()
        idx.fingerprint = fingerprint(idx.size)
        return idx
    except TarFormatError as e:
        raise ShardError(ref.name, e.reason, e.offset) from None
    except FileNotFoundError:
        raise ShardError(ref.name, f"no such file: {ref.local_path or ref.url}") from None
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise ShardError(ref.name, f"cannot read: {e}") from None


def _index_local(ref: ShardRef, path: str) -> ShardIndex:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_size == 0:
            raise TarFormatError("empty file (0 bytes)", 0)
        head = f.read(6)
        if _decompressor(head, f) is not None:
            f.seek(0)
            idx = _index_stream(ref, f)
        else:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                idx = _index_source(BufferSource(mm))
            idx.size = st.st_size
    idx.fingerprint = local_fingerprint(st)
    return idx


def _index_stream(ref: ShardRef, raw: IO[bytes]) -> ShardIndex:
    head = raw.read(6)
    stream: IO[bytes] = _Peeked(head, raw)  # type: ignore[assignment]
    dec = _decompressor(head, stream)
    src = StreamSource(dec if dec is not None else stream)
    idx = _index_source(src)
    src.drain()
    idx.size = src.pos
    idx.seekable = False
    return idx
