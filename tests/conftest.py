from __future__ import annotations

import os
import sys
import tarfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from shardutil import write_gnu_tar, write_tarfile, write_wds  # noqa: E402

LONG = "k" * 120


def _tree(root: str, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        p = os.path.join(root, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    return root


@pytest.fixture(scope="session")
def fixture_shards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every kind of shard the index must read exactly as webdataset does.

    Returns a dict: fixture name -> shard paths (in order).
    """
    base = tmp_path_factory.mktemp("fixtures")
    out: dict[str, list[str]] = {}
    out["shardwriter"] = write_wds(str(base / "sw"), 250, 100)
    tree = {
        f"sub/dir/{LONG}.txt": b"a",
        f"sub/dir/{LONG}.json": b"{}",
        "x.y.z.tar.gz.txt": b"multi-dot",
        "x.y.z.cls": b"1",
        "a/b/c.d.e.jpg": b"\xff\xd8",
        "a/b/c.d.e.JSON": b"{}",
        "plain.txt": b"p",
        "__meta__": b"skipped",
        "noext": b"skipped too",
        ("p" * 80) + "/" + ("q" * 80) + "/key.txt": b"ustar prefix",
        ("p" * 80) + "/" + ("q" * 80) + "/key.cls": b"2",
    }
    src = _tree(str(base / "tree"), tree)
    for fmt in ("gnu", "pax", "ustar", "v7"):
        d = base / f"tar-{fmt}"
        d.mkdir()
        if fmt in ("ustar", "v7"):
            # ustar cannot hold names over 255 characters, v7 none over 100.
            def fits(k: str) -> bool:
                if fmt == "v7":
                    return len(k) < 98
                return len(os.path.basename(k)) < 99 and len(k) < 250

            small = _tree(str(base / f"tree-{fmt}"), {k: v for k, v in tree.items() if fits(k)})
            out[f"tar-{fmt}"] = [write_gnu_tar(str(d / "shard-0.tar"), small, fmt)]
        else:
            out[f"tar-{fmt}"] = [write_gnu_tar(str(d / "shard-0.tar"), src, fmt)]
    members = [(f"dir{i % 3}/s{i:03d}.part.{ext}", f"{i}{ext}".encode()) for i in range(30) for ext in ("png", "cls")]
    members = [(f"d/{i:04d}.{'x' * 150}.{ext}", b"v") for i in range(5) for ext in ("a", "b")] + members
    out["tarfile-pax"] = [write_tarfile(str(base / "tf" / "pax.tar"), members, tarfile.PAX_FORMAT, dirs=["d", "dir0"])]
    out["tarfile-gnu"] = [write_tarfile(str(base / "tf" / "gnu.tar"), members, tarfile.GNU_FORMAT)]
    big = [(f"n{i}.bin", os.urandom(700 + i)) for i in range(40)]
    out["tarfile-sizes"] = [write_tarfile(str(base / "tf" / "sizes.tar"), big, tarfile.USTAR_FORMAT)]
    return out


@pytest.fixture()
def small_shards(tmp_path) -> list[str]:  # type: ignore[no-untyped-def]
    """Five ShardWriter shards of 20 samples each, in a fresh directory."""
    return write_wds(str(tmp_path / "data"), 100, 20)


@pytest.fixture()
def dataset(tmp_path):  # type: ignore[no-untyped-def]
    """Six ShardWriter shards of 50 samples and their ledger: (shard paths, ledger path)."""
    from seta_stream.builder import build_ledger

    paths = write_wds(str(tmp_path / "data"), 300, 50)
    lp = str(tmp_path / "ledger.duckdb")
    build_ledger(paths, lp, progress=False, workers=1)
    return paths, lp
