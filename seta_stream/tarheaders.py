"""Tar headers: a lean parser that reads what ``tarfile`` reads, from a buffer or a stream.

Headers are decoded the way Python's :mod:`tarfile` decodes them (ustar prefix,
GNU long names, pax ``path``/``size`` records, global pax headers, directories,
links, unknown types), with webdataset's rules for which members count
(regular files, no ``__meta__`` names) and how a name splits into key and
extensions (:func:`split_key`, webdataset's ``base_plus_ext``). Over a buffer
(an mmap of a local shard, or the bytes of a sample's span) headers are
decoded in place and their checksums verified in numpy batches; over a stream
(pipe, http, compressed) member data is read and dropped.

Where tarfile (and so webdataset) silently stops at a corrupt header, this
parser raises :class:`TarFormatError` with the offset of the faulty block.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from typing import IO, Protocol

import numpy as np
from numpy.typing import NDArray

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
# The ustar header fields read on every header: name, size, chksum and type.
_HEADER = struct.Struct("100s24x12s12x8sc")
_PREFIX = 345  # ustar prefix field: 155 bytes, read only when its first byte is set
_TERMINATORS = frozenset(b"\x00 ")
_LONGNAME, _LONGLINK, _GLOBAL_PAX, _SPARSE, _DIRTYPE = b"L"[0], b"K"[0], b"g"[0], b"S"[0], b"5"[0]
_EXTENSION_TYPES = frozenset(b"LKxgX")
_REGULAR = frozenset(b"0\x007S")  # tarfile.REGULAR_TYPES (S: GNU sparse)
_SUPPORTED = frozenset(b"0\x001253467LKS")  # tarfile.SUPPORTED_TYPES
_GNU_TYPES = frozenset(b"LKS")
_META = re.compile(r"__[^/]*__($|/)")
# The pattern of webdataset.tariterators.base_plus_ext, compiled once: calling
# that function costs a regex-cache lookup per member. The test suite checks
# that both split every name alike.
_BASE_PLUS_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


class TarFormatError(Exception):
    """Raised by the parser with the offset of the faulty block."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def _nts(b: bytes) -> str:
    p = b.find(b"\0")
    if p >= 0:
        b = b[:p]
    return b.decode("utf-8", "surrogateescape")


def _nti(b: bytes, offset: int) -> int:
    if b[0] in (0o200, 0o377):  # base-256 (GNU) encoding for large numbers
        n = int.from_bytes(b[1:], "big")
        if b[0] == 0o377:
            n = -(256 ** (len(b) - 1) - n)
        return n
    p = b.find(b"\0")
    s = (b[:p] if p >= 0 else b).strip()
    try:
        return int(s or b"0", 8)
    except ValueError:
        raise TarFormatError("invalid number in tar header", offset) from None


def _check_sum(blk: bytes, stored: bytes, offset: int) -> None:
    try:
        want = _nti(stored, offset)
    except TarFormatError:
        want = -1
    unsigned = sum(blk) - sum(blk[148:156]) + 256
    if want == unsigned:
        return
    signed = unsigned - 2 * sum(x for x in blk[:148] + blk[156:] if x > 127)
    if want != signed:
        raise TarFormatError("bad tar header checksum (not a tar, or corrupt)", offset)


def _parse_pax(data: bytes, headers: dict[str, str], offset: int) -> None:
    pos = 0
    while True:
        m = _PAX_RECORD.match(data, pos)
        if not m:
            return
        length = int(m.group(1))
        if length == 0:
            raise TarFormatError("invalid pax header record", offset)
        keyword = m.group(2).decode("utf-8", "surrogateescape")
        value = data[m.end(2) + 1 : m.start(1) + length - 1]
        headers[keyword] = value.decode("utf-8", "surrogateescape")
        pos += length


def _apply_pax(name: str, size: int, pax: dict[str, str]) -> tuple[str, int]:
    for keyword, value in pax.items():
        if keyword in ("path", "GNU.sparse.name"):
            name = value.rstrip("/") if keyword == "path" else value
        elif keyword in ("size", "GNU.sparse.size", "GNU.sparse.realsize"):
            try:
                size = int(value)
            except ValueError:
                size = 0
    return name, size


class Source(Protocol):
    """Where headers and member data are read from."""

    def block(self, offset: int) -> bytes: ...
    def data(self, offset: int, n: int) -> bytes: ...
    def skip_to(self, offset: int) -> None: ...


@dataclass
class BufferSource:
    """Random access over a buffer (an mmap, or bytes of a sample span)."""

    buf: bytes | mmap.mmap
    base: int = 0  # offset of buf[0] in the shard

    def block(self, offset: int) -> bytes:
        i = offset - self.base
        return self.buf[i : i + BLOCK]

    def data(self, offset: int, n: int) -> bytes:
        i = offset - self.base
        return self.buf[i : i + n]

    def skip_to(self, offset: int) -> None:
        if offset - self.base > len(self.buf):
            raise EOFError(len(self.buf) + self.base)


@dataclass
class StreamSource:
    """Forward-only access over a file-like stream; skipped data is read and dropped."""

    f: IO[bytes]
    pos: int = 0

    def _advance(self, offset: int) -> None:
        while self.pos < offset:
            chunk = self.f.read(min(offset - self.pos, 1 << 20))
            if not chunk:
                raise EOFError(self.pos)
            self.pos += len(chunk)

    def _read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            chunk = self.f.read(n)
            if not chunk:
                break
            parts.append(chunk)
            n -= len(chunk)
            self.pos += len(chunk)
        return b"".join(parts)

    def block(self, offset: int) -> bytes:
        self._advance(offset)
        return self._read(BLOCK)

    def data(self, offset: int, n: int) -> bytes:
        self._advance(offset)
        return self._read(n)

    def skip_to(self, offset: int) -> None:
        self._advance(offset)

    def drain(self) -> None:
        """Read to the end of the stream, counting the bytes."""
        while chunk := self.f.read(1 << 20):
            self.pos += len(chunk)


class _Checksums:
    """Header checksum verification.

    Over a buffer the checks are batched: header offsets are collected while
    walking and verified with numpy in one pass over just those blocks, which
    keeps the per-header cost of a walk low. Over a stream each header is
    checked as it is read.
    """

    def __init__(self, buf: bytes | mmap.mmap | None, base: int = 0, enabled: bool = True) -> None:
        self._buf = buf
        self._base = base
        self._enabled = enabled
        self.offsets: list[int] = []

    def add(self, blk: bytes, chk: bytes, off: int) -> None:
        if not self._enabled:
            return
        if self._buf is None:
            _check_sum(blk, chk, off)
        else:
            self.offsets.append(off)

    def verify(self) -> None:
        """Raise TarFormatError at the first collected header with a bad checksum."""
        if not self._enabled:
            self.offsets.clear()
            return
        if not self.offsets or self._buf is None:
            return
        offs = np.asarray(self.offsets, dtype=np.int64) - self._base
        self.offsets.clear()
        bad = self._first_bad(offs)  # no view of the buffer may outlive this call
        if bad is not None:
            _check_sum(bad[0], bad[0][148:156], bad[1])

    def _first_bad(self, offs: NDArray[np.int64]) -> tuple[bytes, int] | None:
        nblocks = len(self._buf) // BLOCK  # type: ignore[arg-type]
        blocks = np.frombuffer(self._buf, dtype=np.uint8, count=nblocks * BLOCK).reshape(nblocks, BLOCK)  # type: ignore[arg-type]
        weights = 8 ** np.arange(5, -1, -1)
        for lo in range(0, len(offs), 8192):
            rows = blocks[offs[lo : lo + 8192] // BLOCK]
            total = rows.sum(axis=1, dtype=np.int64) - rows[:, 148:156].sum(axis=1, dtype=np.int64) + 256
            digits = rows[:, 148:154].astype(np.int64) - 48
            stored = (digits * weights).sum(axis=1)
            simple = ((digits >= 0) & (digits <= 7)).all(axis=1) & np.isin(rows[:, 154], (0, 32))
            for i in np.flatnonzero(~simple | (stored != total)):
                row = bytes(rows[i])
                try:
                    _check_sum(row, row[148:156], 0)
                except TarFormatError:
                    return row, int(offs[lo + i]) + self._base
        return None


Member = tuple[str, int, int, int, "bytes | None"]
"""``(name, header_offset, data_offset, size, data)`` of a regular-file member."""


def list_members(
    src: Source, start: int = 0, end: int | None = None, want_data: bool = False, verify: bool = True
) -> list[Member]:
    """The regular-file members that webdataset reads, in archive order.

    Args:
        src: Where to read blocks.
        start: Offset of the first header to read.
        end: Stop before this offset (a sample span); None reads to the end
            of the archive (the first zero block, or the end of the data).
        want_data: Also return each member's bytes.
        verify: Check header checksums (readers of spans the index already
            verified may skip it).

    Returns:
        ``(name, header_offset, data_offset, size, data)`` per member:
        header_offset is the first block of the member, its GNU long-name or
        pax headers included; data is None unless ``want_data``.

    Raises:
        TarFormatError: corrupt header (bad checksum), truncated header or
            member data.
    """
    buffered = isinstance(src, BufferSource)
    checks = _Checksums(src.buf if buffered else None, src.base if buffered else 0, enabled=verify)  # type: ignore[attr-defined]
    out: list[Member] = []
    try:
        _scan(src, start, end, want_data, checks, out)
    except TarFormatError:
        checks.verify()  # a bad checksum before the failure is the real cause
        raise
    checks.verify()
    return out


def _scan(src: Source, start: int, end: int | None, want_data: bool, checks: _Checksums, out: list[Member]) -> None:
    emit = out.append
    unpack = _HEADER.unpack_from
    block, add_check = src.block, checks.add
    # Over a buffer, slice and record checksums inline: a method call per
    # header is a large share of the cost of a walk.
    buf = src.buf if isinstance(src, BufferSource) else None
    base = src.base if isinstance(src, BufferSource) else 0
    buf_len = len(buf) if buf is not None else 0
    buf_end = base + buf_len
    record = checks.offsets.append
    global_pax: dict[str, str] = {}
    off = start
    pending = 0
    while end is None or off < end:
        first = off
        long_name: str | None = None
        pax: dict[str, str] | None = None
        while True:  # extension headers, then the member itself
            # Over a buffer the header is decoded in place (no 512-byte copy);
            # over a stream, from the block just read.
            if buf is not None:
                mem, i = buf, off - base
                short = i + BLOCK > buf_len
                if short:
                    mem, i = buf[i : i + BLOCK], 0
            else:
                mem, i = block(off), 0
                short = len(mem) < BLOCK
            if short:
                if not mem and off == first:
                    if off == 0:
                        raise TarFormatError("empty file (0 bytes)", 0)
                    return  # the archive ends without end-of-archive blocks, as tarfile allows
                raise TarFormatError("truncated tar header", off)
            if mem[i] == 0 and mem[i : i + BLOCK] == _ZERO_BLOCK:
                if off == first:
                    return
                raise TarFormatError("end-of-archive block where a member header was expected", off)
            name_b, size_b, chk, typ_b = unpack(mem, i)
            if buf is not None:
                record(off)
                pending += 1
                if pending >= 65536:
                    checks.verify()
                    pending = 0
            else:
                add_check(mem, chk, off)
            typ = typ_b[0]
            try:  # the common shape: 11 octal digits and a terminator
                size = int(size_b[:11], 8) if size_b[11] in _TERMINATORS else _nti(size_b, off)
            except ValueError:
                size = _nti(size_b, off)
            doff = off + BLOCK
            if typ in _EXTENSION_TYPES:
                raw = buf[doff - base : doff - base + size] if buf is not None else src.data(doff, size)
                if len(raw) < size:
                    raise TarFormatError("truncated extension header", off)
                if typ == _LONGNAME:
                    long_name = _nts(raw)
                elif typ == _GLOBAL_PAX:
                    _parse_pax(raw, global_pax, off)
                elif typ != _LONGLINK and (b"path=" in raw or b"size=" in raw or b"GNU." in raw):
                    # other pax records (mtime, uid, ...) change nothing webdataset reads
                    if pax is None:
                        pax = dict(global_pax)
                    _parse_pax(raw, pax, off)
                off = doff + ((size + 511) & -512)
                continue
            break
        p = name_b.find(b"\0")
        name = (name_b[:p] if p >= 0 else name_b).decode("utf-8", "surrogateescape")
        if typ == 0 and name.endswith("/"):
            typ = _DIRTYPE
        if mem[i + _PREFIX] and typ not in _GNU_TYPES:
            name = _nts(mem[i + _PREFIX : i + _PREFIX + 155]) + "/" + name
        if global_pax:
            name, size = _apply_pax(name, size, global_pax)
        if pax:
            name, size = _apply_pax(name, size, pax)
        if long_name is not None:
            name = long_name
        if typ == _SPARSE:
            raise TarFormatError(f"GNU sparse member {name!r} is not supported", first)
        if typ in _REGULAR:
            data = None
            if want_data:
                data = src.data(doff, size)
                if len(data) < size:
                    raise TarFormatError(f"truncated member {name!r}: needs {size} bytes", off)
            emit((name, first, doff, size, data))
            has_data = True
        else:
            has_data = typ not in _SUPPORTED
        if has_data:
            if buf is not None:
                if doff + size > buf_end:
                    raise TarFormatError(
                        f"truncated member {name!r}: needs {size} bytes, data ends at byte {buf_end}", off
                    )
            else:
                try:
                    src.skip_to(doff + size)
                except EOFError as e:
                    raise TarFormatError(
                        f"truncated member {name!r}: needs {size} bytes, data ends at byte {e.args[0]}", off
                    ) from None
            off = doff + ((size + 511) & -512)
        else:
            off = doff


def split_key(name: str) -> tuple[str, str] | None:
    """Split a member name into (key, extensions) exactly as ``base_plus_ext`` does.

    The key runs to the first dot of the last path component; names that do
    not fit that common shape take webdataset's own regular expression.
    """
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot > slash + 1:
        return name[:dot], name[dot + 1 :]
    m = _BASE_PLUS_EXT.match(name)
    return None if m is None else (m.group(1), m.group(2))


def is_meta(name: str) -> bool:
    """webdataset's rule for members it skips (``__key__``-style metadata)."""
    if "/" not in name and name.startswith("__") and name.endswith("__"):
        return True
    return _META.match(name) is not None


