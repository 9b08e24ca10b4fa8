from __future__ import annotations

import os

import pytest
from shardutil import write_wds

from seta_stream.errors import SetaStreamError
from seta_stream.shards import ShardResolver, expand_shards


@pytest.fixture()
def tree(tmp_path):
    a = write_wds(str(tmp_path / "data" / "train"), 40, 10, prefix="train")
    b = write_wds(str(tmp_path / "data" / "val"), 20, 10, prefix="val")
    return tmp_path, a, b


def test_brace_glob_directory_and_list(tree) -> None:
    tmp, a, b = tree
    data = tmp / "data"
    brace = expand_shards(str(data / "train" / "train-{000000..000003}.tar"))
    assert [r.local_path for r in brace] == a
    assert [r.name for r in brace] == [os.path.basename(p) for p in a]
    glob = expand_shards(str(data / "**" / "*.tar"))
    assert [r.name for r in glob] == [f"train/{os.path.basename(p)}" for p in a] + [
        f"val/{os.path.basename(p)}" for p in b
    ]
    assert [r.name for r in expand_shards(str(data))] == [r.name for r in glob]
    lst = tmp / "list.txt"
    lst.write_text("# shards\n\ndata/train/train-000001.tar\n" + b[0] + "\n")
    refs = expand_shards("@" + str(lst))
    assert [r.local_path for r in refs] == [a[1], b[0]]
    assert [r.name for r in refs] == ["train/train-000001.tar", "val/val-000000.tar"]


def test_names_are_relative_to_root_and_independent_of_location(tree) -> None:
    tmp, a, _ = tree
    local = expand_shards(a, root=str(tmp / "data"))
    assert local[0].name == "train/train-000000.tar"
    remote = expand_shards(
        [f"https://host/bucket/data/train/{os.path.basename(p)}" for p in a], root="https://host/bucket/data"
    )
    assert [r.name for r in remote] == [r.name for r in local]
    assert remote[0].local_path is None
    piped = expand_shards([f"pipe:curl -s https://host/bucket/data/train/{os.path.basename(a[0])}"],
                          root="https://host/bucket/data")  # fmt: skip
    assert piped[0].name == "train/train-000000.tar"
    assert expand_shards(["file://" + a[0]])[0].local_path == a[0]


def test_bad_specs(tmp_path) -> None:
    with pytest.raises(SetaStreamError, match="matched no shards"):
        expand_shards(str(tmp_path / "*.tar"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SetaStreamError, match="holds no tar shards"):
        expand_shards(str(tmp_path / "empty"))
    with pytest.raises(SetaStreamError, match="cannot read shard list"):
        expand_shards("@" + str(tmp_path / "nope.txt"))
    with pytest.raises(SetaStreamError, match="given twice"):
        expand_shards([str(tmp_path / "a" / "x.tar"), str(tmp_path / "b" / "x.tar")], root=str(tmp_path / "c"))


def test_resolver_maps_urls_back_to_ledger_names() -> None:
    names = ["train/a-000.tar", "val/a-000.tar", "train/b-001.tar"]
    urls = ["/data/train/a-000.tar", "/data/val/a-000.tar", "/data/train/b-001.tar"]
    r = ShardResolver(names, urls)
    assert r("/data/val/a-000.tar") == "val/a-000.tar"
    assert r("s3://bucket/ds/train/a-000.tar") == "train/a-000.tar"
    assert r("pipe:curl -s https://h/x/val/a-000.tar") == "val/a-000.tar"
    assert r("/elsewhere/c-002.tar") is None
    assert ShardResolver(names, urls, root="/mnt/ds")("/mnt/ds/train/b-001.tar") == "train/b-001.tar"
