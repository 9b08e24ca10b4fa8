from __future__ import annotations

import gzip
import os
import re
import shutil
import tarfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shardutil import wds_rows, write_tarfile, write_wds
from webdataset.tariterators import base_plus_ext

from seta_stream.errors import ShardError
from seta_stream.shards import ShardRef, expand_shards
from seta_stream.tarheaders import BLOCK, BufferSource, list_members, split_key
from seta_stream.tarindex import index_shard


def _ref(path: str) -> ShardRef:
    return expand_shards([path])[0]


def _index_rows(paths: list[str]) -> list[tuple[str, str]]:
    rows = []
    for p in paths:
        idx = index_shard(_ref(p))
        rows += [(p, k) for k in idx.keys]
    return rows


def test_every_fixture_matches_webdataset(fixture_shards: dict[str, list[str]]) -> None:
    for name, paths in fixture_shards.items():
        expected = wds_rows(paths)
        assert expected, name
        assert _index_rows(paths) == expected, name


def test_long_names_subdirs_and_multi_dots_are_keys(fixture_shards: dict[str, list[str]]) -> None:
    keys = index_shard(_ref(fixture_shards["tar-pax"][0])).keys
    assert "./sub/dir/" + "k" * 120 in keys
    assert "./x" in keys and "./a/b/c" in keys
    assert not any("__meta__" in k or "noext" in k for k in keys)
    idx = index_shard(_ref(fixture_shards["tar-gnu"][0]))
    i = idx.keys.index("./x")
    assert idx.exts[i] == "y.z.cls,y.z.tar.gz.txt"
    i = idx.keys.index("./a/b/c")
    assert idx.exts[i] == "d.e.json,d.e.jpg"  # suffixes lower-cased, archive order


def test_offsets_and_spans_cover_each_sample(fixture_shards: dict[str, list[str]]) -> None:
    """Each span parses back to exactly the sample's members and bytes."""
    for paths in fixture_shards.values():
        for p in paths:
            idx = index_shard(_ref(p))
            data = open(p, "rb").read()
            samples = {s["__key__"]: s for s in wds_rows_full(p)}
            for key, off, n in zip(idx.keys, idx.offsets, idx.nbytes):
                assert off % BLOCK == 0 and n % BLOCK == 0
                span = data[off : off + n]
                got = {}
                for name, _h, _d, _s, payload in list_members(BufferSource(span, int(off)), int(off), int(off + n), True):
                    parts = split_key(name)
                    if parts and not name.startswith("__"):
                        got[parts[1].lower()] = payload
                want = {k: v for k, v in samples[key].items() if not k.startswith("__")}
                assert got == want


def wds_rows_full(path: str) -> list[dict]:
    from shardutil import wds_samples

    return wds_samples([path])


def test_sample_ids_positions_and_sizes(tmp_path) -> None:
    paths = write_wds(str(tmp_path), 7, 7, payload=1000)
    idx = index_shard(_ref(paths[0]))
    assert len(idx) == 7
    assert idx.offsets[0] == 0
    # ShardWriter writes a pax header per member: 2 members x (pax + header + data)
    assert list(idx.nbytes) == [idx.nbytes[0]] * 7
    assert (idx.offsets[1:] == idx.offsets[:-1] + idx.nbytes[:-1]).all()
    assert idx.size == os.path.getsize(paths[0])
    assert idx.seekable and idx.fingerprint.startswith("size=")


@settings(max_examples=300, derandomize=True)
@given(st.text(alphabet="ab./_-Xé", min_size=0, max_size=14))
def test_split_key_is_webdatasets_rule(name: str) -> None:
    got = split_key(name)
    assert (got if got is not None else (None, None)) == base_plus_ext(name)


def test_streaming_gzip_and_pipe_match(tmp_path) -> None:
    paths = write_wds(str(tmp_path / "d"), 30, 30)
    gz = str(tmp_path / "d.tar.gz")
    with open(paths[0], "rb") as f, gzip.open(gz, "wb") as g:
        shutil.copyfileobj(f, g)
    plain = index_shard(_ref(paths[0]))
    zipped = index_shard(_ref(gz))
    assert zipped.keys == plain.keys and not zipped.seekable
    assert list(zipped.offsets) == list(plain.offsets)
    piped = index_shard(ShardRef(url=f"pipe:cat {paths[0]}", name="x.tar", local_path=None))
    assert piped.keys == plain.keys and piped.fingerprint == f"length={plain.size}"
    assert wds_rows([gz]) == [(gz, k) for k in plain.keys]


def test_http_shard_streams(tmp_path) -> None:
    import functools
    import http.server
    import threading

    paths = write_wds(str(tmp_path), 12, 12)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{os.path.basename(paths[0])}"
        ref = expand_shards([url])[0]
        idx = index_shard(ref)
        assert idx.keys == index_shard(_ref(paths[0])).keys
        assert "length=" in idx.fingerprint
        from seta_stream.shards import probe_fingerprint

        assert probe_fingerprint(ref) == idx.fingerprint
    finally:
        server.shutdown()


# -- bad input ---------------------------------------------------------------------


def _error(path: str) -> ShardError:
    with pytest.raises(ShardError) as e:
        index_shard(_ref(path))
    return e.value


def test_truncated_shard_names_shard_and_offset(tmp_path) -> None:
    p = write_wds(str(tmp_path), 10, 10, payload=2000)[0]
    data = open(p, "rb").read()
    starts = index_shard(_ref(p)).offsets
    cut = int(starts[3]) + 4 * 512 + 700  # inside sample 3's first member data
    open(p, "wb").write(data[:cut])
    err = _error(p)
    assert err.shard == os.path.basename(p)
    assert err.offset is not None and err.offset < cut
    assert "truncated" in str(err) and f"at byte {err.offset}" in str(err)
    # cut inside a header block
    open(p, "wb").write(data[: int(starts[2]) + 100])
    err = _error(p)
    assert "truncated tar header" in str(err) and err.offset == starts[2]


def test_garbage_bytes_inside_a_shard(tmp_path) -> None:
    p = write_wds(str(tmp_path), 10, 10, payload=100)[0]
    data = bytearray(open(p, "rb").read())
    idx = index_shard(_ref(p))
    bad = int(idx.offsets[4])
    data[bad : bad + 512] = os.urandom(512)
    open(p, "wb").write(bytes(data))
    err = _error(p)
    assert err.offset == bad and "checksum" in err.reason


def test_not_a_tar(tmp_path) -> None:
    p = tmp_path / "text.tar"
    p.write_text("this is not a tar file\n" * 100)
    err = _error(str(p))
    assert err.offset == 0 and "checksum" in err.reason


def test_empty_file_and_empty_tar(tmp_path) -> None:
    p = tmp_path / "empty.tar"
    p.write_bytes(b"")
    assert "empty file" in str(_error(str(p)))
    q = str(tmp_path / "none.tar")
    with tarfile.open(q, "w"):
        pass
    assert "no samples" in str(_error(q))


def test_missing_file(tmp_path) -> None:
    err = _error(str(tmp_path / "missing.tar"))
    assert "no such file" in str(err) and err.shard == "missing.tar"


def test_duplicate_key_inside_one_shard(tmp_path) -> None:
    p = write_tarfile(str(tmp_path / "dup.tar"), [("a.txt", b"1"), ("b.txt", b"2"), ("a.cls", b"3")])
    err = _error(p)
    assert "duplicate key 'a'" in err.reason and err.offset is not None and err.offset > 0
    q = write_tarfile(str(tmp_path / "dupext.tar"), [("a.txt", b"1"), ("a.TXT", b"2")])
    assert "duplicate file name" in str(_error(q))


def test_error_message_is_one_line(tmp_path) -> None:
    p = tmp_path / "junk.tar"
    p.write_bytes(os.urandom(3000))
    assert "\n" not in str(_error(str(p)))
    assert re.match(r"shard junk\.tar at byte 0: ", str(_error(str(p))))
