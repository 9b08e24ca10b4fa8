from __future__ import annotations

import csv
import io
import json

import pytest
from shardutil import write_wds

from seta_stream.cli import main
from seta_stream.ledger import Ledger


@pytest.fixture()
def built(tmp_path, capsys):
    paths = write_wds(str(tmp_path / "d"), 60, 20)
    lp = str(tmp_path / "l.duckdb")
    assert main(["build-ledger", *paths, "--ledger", lp, "--quiet", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "samples     60 in ledger" in out and "bad shards  0" in out
    return lp


def test_sql_formats(built, capsys) -> None:
    q = "SELECT shard, count(*) AS n FROM sample_scores GROUP BY shard ORDER BY shard"
    assert main(["sql", "--ledger", built, q]) == 0
    out = capsys.readouterr().out
    assert "train-000002.tar  20" in out and "(3 rows)" in out
    assert main(["sql", "--ledger", built, "--format", "csv", q]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["shard", "n"], ["train-000000.tar", "20"], ["train-000001.tar", "20"], ["train-000002.tar", "20"]]
    assert main(["sql", "--ledger", built, "--format", "json", "SELECT count(*) AS n FROM samples"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 60}]


@pytest.mark.parametrize(
    "q", ["DELETE FROM samples", "UPDATE scores SET loss = 1", "DROP TABLE shards", "COPY samples TO 'x.csv'",
          "SELECT 1; INSERT INTO meta VALUES ('a', 'b')", "ATTACH 'other.db'", "CREATE TABLE t (x INT)"],
)  # fmt: skip
def test_sql_that_writes_is_refused(built, capsys, q: str) -> None:
    assert main(["sql", "--ledger", built, q]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seta-stream: error: inspection is read-only") and err.count("\n") == 1
    with Ledger.open(built, read_only=True) as lg:
        assert lg.num_samples() == 60 and len(lg.shards()) == 3


def test_bad_sql_is_one_line(built, capsys) -> None:
    assert main(["sql", "--ledger", built, "SELECT nope FROM samples"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("seta-stream: error: SQL error") and err.count("\n") == 1


def test_info(built, capsys) -> None:
    assert main(["info", "--ledger", built]) == 0
    out = capsys.readouterr().out
    assert "schema version   1" in out and "samples          60" in out and "3 ok, 0 bad" in out
    assert "0 planned, 0 ingested" in out
    assert main(["info", "--ledger", built, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["samples"] == 60 and info["schema_version"] == 1


def test_build_errors_are_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"garbage" * 100)
    lp = str(tmp_path / "l.duckdb")
    assert main(["build-ledger", str(bad), "--ledger", lp, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard bad.tar at byte 0" in err and "--skip-bad" in err
    assert main(["info", "--ledger", lp]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["build-ledger", str(tmp_path / "*.nothing"), "--ledger", lp, "--quiet"]) == 1
    assert "matched no shards" in capsys.readouterr().err
