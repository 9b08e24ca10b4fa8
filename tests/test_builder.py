from __future__ import annotations

import os
import shutil

import duckdb
import pytest
from shardutil import wds_rows, write_tarfile, write_wds

from seta_stream.builder import build_ledger
from seta_stream.errors import LedgerError, SetaStreamError, ShardError
from seta_stream.ledger import Ledger


def _rows(ledger_path: str) -> list[tuple[str, str, int, int]]:
    with Ledger.open(ledger_path, read_only=True) as lg:
        return lg.con.execute(
            "SELECT sh.name, s.key, s.pos, s.sample_id FROM samples s JOIN shards sh USING (shard_id) "
            "ORDER BY s.sample_id"
        ).fetchall()


def test_ledger_rows_equal_webdataset_for_every_fixture(fixture_shards, tmp_path) -> None:
    for name, paths in fixture_shards.items():
        lp = str(tmp_path / f"{name}.duckdb")
        build_ledger(paths, lp, progress=False, workers=1)
        rows = _rows(lp)
        expected = wds_rows(paths)
        assert [(n, k) for n, k, _, _ in rows] == [(os.path.basename(u), k) for u, k in expected], name
        # positions restart at 0 per shard; ids are dense in shard then position order
        assert [sid for *_, sid in rows] == list(range(len(rows)))
        per_shard: dict[str, int] = {}
        for n, _, pos, _ in rows:
            assert pos == per_shard.get(n, 0)
            per_shard[n] = pos + 1


def test_parallel_build_and_scores_start_unseen(tmp_path) -> None:
    paths = write_wds(str(tmp_path / "d"), 500, 50)
    lp = str(tmp_path / "l.duckdb")
    s = build_ledger(paths, lp, progress=False, workers=2)
    assert (s.shards_total, s.samples_total, s.samples_added, s.bad_shards) == (10, 500, 500, [])
    assert s.bytes_indexed == sum(os.path.getsize(p) for p in paths)
    with Ledger.open(lp, read_only=True) as lg:
        assert lg.num_samples() == 500
        scores, seen = lg.read_scores()
        assert scores.dtype.name == "float32" and not seen.any()
        shards = lg.shards()
        assert [r.first_sample_id for r in shards] == list(range(0, 500, 50))
        assert all(r.seekable and r.fingerprint.startswith("size=") for r in shards)
    assert _rows(lp) == _rows(lp)  # stable


def test_rerun_adds_shards_and_keeps_ids(tmp_path) -> None:
    d = str(tmp_path / "d")
    first = write_wds(d, 60, 20, prefix="a")
    lp = str(tmp_path / "l.duckdb")
    build_ledger(first, lp, root=d, progress=False, workers=1)
    before = _rows(lp)
    fp_before = _fingerprint(lp)
    more = write_wds(d, 40, 20, prefix="b", start=60)
    s = build_ledger(first + more, lp, root=d, progress=False, workers=2)
    after = _rows(lp)
    assert after[: len(before)] == before
    assert len(after) == 100 and s.shards_unchanged == 3 and s.shards_indexed == 2
    assert _fingerprint(lp) != fp_before
    # a third run changes nothing
    s = build_ledger(first + more, lp, root=d, progress=False)
    assert s.samples_added == 0 and _rows(lp) == after


def _fingerprint(lp: str) -> str:
    with Ledger.open(lp, read_only=True) as lg:
        return lg.fingerprint()


def test_changed_shard_is_an_error_naming_it_until_rebuild(tmp_path) -> None:
    paths = write_wds(str(tmp_path / "d"), 40, 20)
    lp = str(tmp_path / "l.duckdb")
    build_ledger(paths, lp, progress=False)
    with open(paths[1], "ab") as f:
        f.write(bytes(1024))
    with pytest.raises(SetaStreamError, match=r"shard train-000001\.tar changed since the ledger was built"):
        build_ledger(paths, lp, progress=False)
    assert len(_rows(lp)) == 40
    s = build_ledger(paths, lp, progress=False, rebuild=True)
    assert s.samples_total == 40 and s.shards_indexed == 2
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_same_key_in_two_shards_is_allowed_and_counted(tmp_path) -> None:
    a = write_wds(str(tmp_path / "a"), 10, 10)
    b = write_wds(str(tmp_path / "b"), 10, 10)  # same keys s0000000..s0000009
    lp = str(tmp_path / "l.duckdb")
    s = build_ledger(a + b, lp, progress=False, root=str(tmp_path))
    assert s.samples_total == 20 and s.duplicate_keys == 10
    assert {n for n, *_ in _rows(lp)} == {"a/train-000000.tar", "b/train-000000.tar"}


def _bad_shards(tmp_path) -> dict[str, str]:
    d = tmp_path / "bad"
    d.mkdir()
    good = write_wds(str(d), 20, 10, prefix="good")
    trunc = str(d / "trunc.tar")
    shutil.copy(good[0], trunc)
    with open(trunc, "r+b") as f:
        f.truncate(3000)
    (d / "text.tar").write_text("not a tar\n" * 200)
    (d / "empty.tar").write_bytes(b"")
    dup = write_tarfile(str(d / "dup.tar"), [("a.txt", b"1"), ("b.txt", b"2"), ("a.cls", b"3")])
    return {"good0": good[0], "good1": good[1], "trunc": trunc, "text": str(d / "text.tar"),
            "empty": str(d / "empty.tar"), "dup": dup, "missing": str(d / "missing.tar")}  # fmt: skip


@pytest.mark.parametrize("bad", ["trunc", "text", "empty", "dup", "missing"])
def test_bad_shard_fails_the_build_and_writes_nothing(tmp_path, bad: str) -> None:
    s = _bad_shards(tmp_path)
    lp = str(tmp_path / "l.duckdb")
    with pytest.raises(ShardError) as e:
        build_ledger([s["good0"], s[bad], s["good1"]], lp, progress=False, workers=1)
    assert e.value.shard == os.path.basename(s[bad])
    assert "\n" not in str(e.value)
    if bad != "missing":
        assert e.value.offset is not None and f"at byte {e.value.offset}" in str(e.value)
    assert not [f for f in os.listdir(tmp_path) if f.startswith("l.duckdb")]
    # on an existing ledger, a failed re-run leaves it as it was
    build_ledger([s["good0"]], lp, progress=False)
    before = _rows(lp)
    with pytest.raises(ShardError):
        build_ledger([s["good0"], s[bad], s["good1"]], lp, progress=False, workers=2)
    assert _rows(lp) == before
    with Ledger.open(lp, read_only=True) as lg:
        assert [r.name for r in lg.shards()] == ["good-000000.tar"]


def test_skip_bad_records_bad_shards_and_builds_the_rest(tmp_path) -> None:
    s = _bad_shards(tmp_path)
    lp = str(tmp_path / "l.duckdb")
    order = ["good0", "trunc", "text", "empty", "dup", "missing", "good1"]
    summary = build_ledger([s[k] for k in order], lp, progress=False, skip_bad=True, workers=2)
    assert summary.samples_total == 20
    assert [n for n, _ in summary.bad_shards] == ["trunc.tar", "text.tar", "empty.tar", "dup.tar", "missing.tar"]
    with Ledger.open(lp, read_only=True) as lg:
        bad = {r.name: r.error for r in lg.shards(status="bad")}
        assert set(bad) == {"trunc.tar", "text.tar", "empty.tar", "dup.tar", "missing.tar"}
        assert "at byte" in bad["trunc.tar"] and "no such file" in bad["missing.tar"]
        assert [r.name for r in lg.shards(status="ok")] == ["good-000000.tar", "good-000001.tar"]
    # fixing a bad shard and re-running indexes it, after the existing ids
    shutil.copy(s["good1"], s["trunc"])
    summary = build_ledger([s[k] for k in order], lp, progress=False, skip_bad=True)
    assert summary.samples_total == 30
    rows = _rows(lp)
    assert [n for n, *_ in rows[20:]] == ["trunc.tar"] * 10


def test_unknown_schema_version_is_refused(tmp_path) -> None:
    paths = write_wds(str(tmp_path / "d"), 10, 10)
    lp = str(tmp_path / "l.duckdb")
    build_ledger(paths, lp, progress=False)
    con = duckdb.connect(lp)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(LedgerError, match="schema version 99; this seta-stream reads version 1"):
        Ledger.open(lp)
    with pytest.raises(LedgerError):
        build_ledger(paths, lp, progress=False)
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    with pytest.raises(LedgerError, match="not a seta-stream ledger"):
        Ledger.open(str(other))
