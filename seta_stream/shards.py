"""Shard lists: turn what a user types into an ordered list of named shards.

A shard spec is any of:

* a local path (``data/train-000001.tar``) or ``file://`` URL;
* a brace pattern (``data/train-{000000..000099}.tar``), expanded in order;
* a glob (``data/**/*.tar``), sorted;
* a directory, meaning every ``.tar`` (``.tar.gz``, ``.tgz``) below it, sorted;
* ``@list.txt``: a file with one spec per line (blank lines and ``#`` comments
  skipped);
* a ``pipe:`` command or an ``http(s)://`` URL, kept as given.

Every shard gets a *name*: its path relative to the dataset root. The root is
given with ``root=`` or, by default, is the deepest directory that holds all the
shards. Names are what the ledger stores as identity, so a ledger built from
``/nvme/data/train/a.tar`` still matches ``https://host/bucket/train/a.tar``
(both are named ``train/a.tar`` when rooted at their ``data`` directory).
"""

from __future__ import annotations

import glob
import os
import posixpath
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import braceexpand

from .errors import SetaStreamError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class ShardRef:
    """One shard: where to read it and what it is called.

    Attributes:
        url: What webdataset opens: a local path, ``pipe:...`` or ``http(s)://...``.
        name: Identity in the ledger: the path relative to the dataset root.
        local_path: Absolute path when the shard is a local file (seekable),
            else None.
    """

    url: str
    name: str
    local_path: str | None


def is_remote(url: str) -> bool:
    """True for ``pipe:`` and URL schemes other than ``file``."""
    if url.startswith("pipe:"):
        return True
    scheme = urlparse(url).scheme
    return len(scheme) > 1 and scheme != "file"


def _local_path(url: str) -> str | None:
    if url.startswith("file://"):
        return os.path.abspath(urlparse(url).path)
    if is_remote(url):
        return None
    return os.path.abspath(url)


def location(url: str) -> str:
    """The path part of a shard URL, used for naming.

    Local paths are made absolute; for ``http(s)`` the URL path; for ``pipe:``
    the last word of the command that looks like a shard (``pipe:curl -s
    http://h/d/a.tar`` gives ``/d/a.tar``).
    """
    if url.startswith("pipe:"):
        words = shlex.split(url[5:])
        for word in reversed(words):
            if word.endswith(TAR_SUFFIXES) or "/" in word:
                return location(word) if is_remote(word) else posixpath.normpath(word)
        return url
    local = _local_path(url)
    if local is not None:
        return local
    return urlparse(url).path or url


def _expand_one(spec: str, out: list[str], depth: int = 0) -> None:
    if depth > 8:
        raise SetaStreamError(f"shard list nesting too deep at {spec!r}")
    if spec.startswith("@"):
        listfile = spec[1:]
        try:
            with open(listfile, encoding="utf-8") as f:
                lines = [ln.strip() for ln in f]
        except OSError as e:
            raise SetaStreamError(f"cannot read shard list {listfile}: {e.strerror}") from None
        base = os.path.dirname(os.path.abspath(listfile))
        for line in lines:
            if not line or line.startswith("#"):
                continue
            if not is_remote(line) and not line.startswith("@") and not os.path.isabs(line):
                line = os.path.join(base, line)
            _expand_one(line, out, depth + 1)
        return
    if is_remote(spec):
        out.extend(braceexpand.braceexpand(spec))
        return
    for item in braceexpand.braceexpand(spec):
        path = _local_path(item) or item
        if os.path.isdir(path):
            found = sorted(
                os.path.join(d, f)
                for d, _, files in os.walk(path)
                for f in files
                if f.endswith(TAR_SUFFIXES)
            )
            if not found:
                raise SetaStreamError(f"directory {item} holds no tar shards")
            out.extend(found)
        elif _GLOB_CHARS & set(item):
            found = sorted(glob.glob(path, recursive=True))
            found = [f for f in found if os.path.isfile(f)]
            if not found:
                raise SetaStreamError(f"pattern {item} matched no shards")
            out.extend(found)
        else:
            out.append(path)


def default_root(urls: Sequence[str]) -> str:
    """The deepest directory that holds every shard's location."""
    dirs = [posixpath.dirname(location(u)) for u in urls]
    if not dirs:
        return ""
    common = posixpath.commonpath(dirs) if all(d.startswith("/") for d in dirs) else ""
    if common:
        return common
    prefix = os.path.commonprefix(dirs)
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def shard_name(url: str, root: str) -> str:
    """Name of a shard relative to ``root`` (its basename if not under it)."""
    loc = location(url)
    root_loc = location(root) if root else ""
    if root_loc:
        base = root_loc.rstrip("/") + "/"
        if loc.startswith(base):
            return loc[len(base) :]
    return posixpath.basename(loc) or loc


def expand_shards(specs: str | Iterable[str], root: str | None = None) -> list[ShardRef]:
    """Expand shard specs into named shards, in the order given.

    Args:
        specs: One spec or several (see the module docstring).
        root: Dataset root used for naming; default: the common directory.

    Returns:
        The shards, in order, each named relative to the root.

    Raises:
        SetaStreamError: a pattern or directory matched nothing, a list file is
            unreadable, no shard was given, or two shards share a name.
    """
    if isinstance(specs, str):
        specs = [specs]
    urls: list[str] = []
    for spec in specs:
        _expand_one(spec, urls)
    if not urls:
        raise SetaStreamError("no shards given")
    base = root if root is not None else default_root(urls)
    refs: list[ShardRef] = []
    seen: dict[str, str] = {}
    for url in urls:
        name = shard_name(url, base)
        if name in seen:
            raise SetaStreamError(f"shard name {name} given twice ({seen[name]} and {url}); pass --root")
        seen[name] = url
        refs.append(ShardRef(url=url, name=name, local_path=_local_path(url)))
    return refs


class ShardResolver:
    """Maps the ``__url__`` webdataset attaches to a sample back to a ledger name.

    Tried in order: the exact URL the ledger was built from, the name relative to
    ``root`` (when given), then the longest ledger name that the URL's path ends
    with (so ``s3://b/data/train/a.tar`` finds ``train/a.tar``). Results are cached:
    resolution costs once per shard, not per sample.
    """

    def __init__(self, names: Sequence[str], urls: Sequence[str] = (), root: str | None = None) -> None:
        self._names = set(names)
        self._by_url = {u: n for u, n in zip(urls, names) if u}
        self._root = root
        self._by_base: dict[str, list[str]] = {}
        for n in names:
            self._by_base.setdefault(posixpath.basename(n), []).append(n)
        self._cache: dict[str, str | None] = {}

    def __call__(self, url: str) -> str | None:
        """The ledger name for ``url``, or None when no ledger shard matches."""
        try:
            return self._cache[url]
        except KeyError:
            pass
        name = self._resolve(url)
        self._cache[url] = name
        return name

    def _resolve(self, url: str) -> str | None:
        if url in self._by_url:
            return self._by_url[url]
        if url in self._names:
            return url
        if self._root is not None:
            name = shard_name(url, self._root)
            if name in self._names:
                return name
        loc = location(url)
        candidates = self._by_base.get(posixpath.basename(loc), [])
        best = None
        for n in candidates:
            if (loc == n or loc.endswith("/" + n)) and (best is None or len(n) > len(best)):
                best = n
        return best


def local_fingerprint(st: os.stat_result) -> str:
    """Fingerprint of a local file: its size and modification time."""
    return f"size={st.st_size},mtime_ns={st.st_mtime_ns}"


def http_fingerprint(etag: str | None, length: str | None, nbytes: int | None = None) -> str:
    """Fingerprint of a remote object: its ETag and length."""
    return f"etag={etag or ''},length={length if length is not None else nbytes}"


def probe_fingerprint(ref: ShardRef) -> str | None:
    """The shard's current fingerprint without reading it, or None if unknowable.

    Local files are stat'ed; ``http(s)`` URLs get a HEAD request; ``pipe:``
    commands cannot be probed (None: the caller must read the shard).

    Raises:
        SetaStreamError: the file is missing or the server refuses the request.
    """
    if ref.local_path is not None:
        try:
            return local_fingerprint(os.stat(ref.local_path))
        except FileNotFoundError:
            raise SetaStreamError(f"shard {ref.name}: no such file: {ref.local_path}") from None
    if ref.url.startswith(("http://", "https://")):
        import urllib.request

        req = urllib.request.Request(ref.url, method="HEAD")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - a shard URL the user gave
                return http_fingerprint(resp.headers.get("ETag"), resp.headers.get("Content-Length"))
        except OSError as e:
            raise SetaStreamError(f"shard {ref.name}: cannot reach {ref.url}: {e}") from None
    return None
