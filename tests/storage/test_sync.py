"""Daily S3 sync against moto in server mode: checksums, manifests, idempotence, tamper detection,
and DuckDB over the S3 lake giving the local counts."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from datetime import date
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

from schemas import DERIVATIVE_DATASETS, arrow_schema
from storage import sync as sync_mod
from storage.catalog import open_catalog
from storage.compact import compact_lake, data_files
from storage.sync import S3Lake, manifest_key, sync_lake
from ticktape.commands import query as query_cmd
from ticktape.commands import sync as sync_cmd

from .lakegen import (
    partition_dir,
    run_command,
    trade_rows,
    write_orphan,
    write_sink_file,
    write_trade_day,
)

DAY1 = date(2024, 8, 7)
DAY2 = date(2024, 8, 8)
TODAY = date(2024, 8, 9)
_bucket_ids = itertools.count()


@pytest.fixture
def s3(moto):
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")


@pytest.fixture
def bucket(s3) -> str:
    name = f"lake-{next(_bucket_ids)}"
    s3.create_bucket(Bucket=name)
    return name


def make_lake(root: Path) -> Path:
    lake = root / "lake"
    write_trade_day(lake, "binance", DAY1, n=3_000, files=4, stream="a")
    write_trade_day(lake, "okx", DAY1, n=800, files=2, seed=3, stream="b")
    write_trade_day(lake, "binance", DAY2, n=2_000, files=3, seed=4, stream="c")
    write_trade_day(lake, "binance", TODAY, n=500, files=2, seed=5, stream="d")  # open day: never synced
    compact_lake(lake, day=DAY1, closed_before=TODAY)  # one day compacted, one not: both sync
    return lake


def sync_argv(lake: Path, moto, bucket: str, *extra: str) -> list[str]:
    return [
        "sync",
        "--lake",
        str(lake),
        "--to",
        f"s3://{bucket}/research/lake",
        "--endpoint-url",
        moto.url,
        "--closed-before",
        TODAY.isoformat(),
        *extra,
    ]


def all_keys(s3, bucket: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def test_sync_checksums_manifests_and_idempotence(tmp_path: Path, moto, s3, bucket: str, capsys) -> None:
    lake = make_lake(tmp_path)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 0
    out = capsys.readouterr().out
    assert "2024-08-07: ok" in out and "2024-08-08: ok" in out and "2024-08-09" not in out

    keys = all_keys(s3, bucket)
    assert "research/lake/_ticktape/manifests/date=2024-08-07.json" in keys
    assert "research/lake/_ticktape/manifests/date=2024-08-08.json" in keys
    assert not [k for k in keys if "2024-08-09" in k]
    for day in (DAY1, DAY2):
        manifest = json.loads(
            s3.get_object(Bucket=bucket, Key=f"research/lake/{manifest_key(day)}")["Body"].read()
        )
        local = [f for part in (lake / "trades").glob(f"exchange=*/date={day}") for f in data_files(part)]
        assert sorted(f["key"] for f in manifest["files"]) == sorted(
            f.relative_to(lake).as_posix() for f in local
        )
        assert manifest["total_rows"] == sum(pq.ParquetFile(f).metadata.num_rows for f in local)
        for f in manifest["files"]:
            body = (lake / f["key"]).read_bytes()
            assert f["size"] == len(body)
            assert f["sha256"] == hashlib.sha256(body).hexdigest()
            head = s3.head_object(Bucket=bucket, Key=f"research/lake/{f['key']}", ChecksumMode="ENABLED")
            expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
            assert head["ChecksumSHA256"] == expected == f["checksum_sha256"]
            assert head["ContentLength"] == len(body)
            assert f["rows"] == pq.ParquetFile(lake / f["key"]).metadata.num_rows

    # The manifest is written last: its LastModified is not before any file of its day.
    objs = {
        o["Key"]: o["LastModified"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix="research/lake/")["Contents"]
    }
    for day in (DAY1, DAY2):
        m_time = objs[f"research/lake/{manifest_key(day)}"]
        assert all(t <= m_time for k, t in objs.items() if f"date={day}/" in k)

    # A second run uploads nothing and changes nothing.
    before = {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in keys}
    remote = S3Lake(f"s3://{bucket}/research/lake", endpoint_url=moto.url)
    reports = sync_lake(lake, remote, closed_before=TODAY)
    assert [r.ok for r in reports] == [True, True]
    assert all(not r.uploaded and not r.manifest_written for r in reports)
    assert all_keys(s3, bucket) == keys
    assert {k: s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in keys} == before


def test_tampered_missing_and_extra_objects_fail_naming_them(
    tmp_path: Path, moto, s3, bucket: str, capsys
) -> None:
    lake = make_lake(tmp_path)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 0
    capsys.readouterr()
    files = [k for k in all_keys(s3, bucket) if k.endswith(".parquet")]
    tampered, same_size, deleted = files[0], files[1], files[2]
    # Different content, stored with its own (correct) checksum: what a bad writer would leave.
    s3.put_object(Bucket=bucket, Key=tampered, Body=b"not parquet", ChecksumAlgorithm="SHA256")
    body = bytearray(s3.get_object(Bucket=bucket, Key=same_size)["Body"].read())
    body[len(body) // 2] ^= 0xFF  # one flipped byte, same size
    s3.put_object(Bucket=bucket, Key=same_size, Body=bytes(body), ChecksumAlgorithm="SHA256")
    s3.delete_object(Bucket=bucket, Key=deleted)
    extra = "research/lake/trades/exchange=binance/date=2024-08-08/stray-00001.parquet"
    s3.put_object(Bucket=bucket, Key=extra, Body=b"x")

    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 1
    err = capsys.readouterr().err
    assert f"s3://{bucket}/{tampered}" in err and "size mismatch" in err
    assert f"checksum mismatch: s3://{bucket}/{same_size}" in err
    assert f"unexpected object (not in the manifest): s3://{bucket}/{extra}" in err
    # The missing object is proven by the local file (manifest checksum): uploaded again and said so.
    assert f"missing: s3://{bucket}/{deleted}" not in err
    assert f"repaired (uploaded again): {deleted.removeprefix('research/lake/')}" in err
    assert deleted in all_keys(s3, bucket)
    # What exists with other content is never overwritten.
    assert s3.get_object(Bucket=bucket, Key=tampered)["Body"].read() == b"not parquet"


def test_a_deleted_object_is_uploaded_again_and_counted(
    tmp_path: Path, moto, s3, bucket: str, capsys
) -> None:
    lake = make_lake(tmp_path)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 0
    capsys.readouterr()
    files = [k for k in all_keys(s3, bucket) if k.endswith(".parquet") and "date=2024-08-08" in k]
    original = s3.get_object(Bucket=bucket, Key=files[0])["Body"].read()
    s3.delete_object(Bucket=bucket, Key=files[0])
    s3.delete_object(Bucket=bucket, Key=files[1])

    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--verify-content")) == 0
    out = capsys.readouterr().out
    day2 = next(line for line in out.splitlines() if line.startswith("2024-08-08"))
    n = len(files)
    assert f"2024-08-08: ok: {n} files, 0 uploaded (0.0 MB), {n - 2} already there, 2 repaired" in day2
    assert f"verified {n} object(s) by downloading and hashing their content" in day2
    assert s3.get_object(Bucket=bucket, Key=files[0])["Body"].read() == original
    head = s3.head_object(Bucket=bucket, Key=files[0], ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(original).digest()).decode()
    # Without --verify-content the summary says what was (and was not) checked.
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 0
    assert f"verified {n} object(s) by size and stored SHA-256 (not content)" in capsys.readouterr().out

    # A local file that no longer matches the manifest proves nothing: the object stays missing.
    s3.delete_object(Bucket=bucket, Key=files[0])
    local = lake / files[0].removeprefix("research/lake/")
    local.write_bytes((lake / files[2].removeprefix("research/lake/")).read_bytes())  # other rows
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 1
    err = capsys.readouterr().err
    assert f"missing: s3://{bucket}/{files[0]}" in err and "repaired" not in err


def test_content_verification_catches_a_lying_checksum(tmp_path: Path, moto, s3, bucket: str, capsys) -> None:
    lake = make_lake(tmp_path)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--date", DAY2.isoformat())) == 0
    capsys.readouterr()
    key = next(k for k in all_keys(s3, bucket) if k.endswith(".parquet"))
    good = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")["ChecksumSHA256"]
    body = bytearray(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[10] ^= 0x01
    # A store that records the old checksum for new bytes: only reading the bytes shows it.
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(body), ChecksumAlgorithm="SHA256", ChecksumSHA256=good)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--date", DAY2.isoformat())) == 0
    capsys.readouterr()
    argv = sync_argv(lake, moto, bucket, "--date", DAY2.isoformat(), "--verify-content")
    assert run_command(sync_cmd, argv) == 1
    assert f"content mismatch: s3://{bucket}/{key}" in capsys.readouterr().err


def test_never_overwrites_and_detects_local_changes(tmp_path: Path, moto, s3, bucket: str, capsys) -> None:
    lake = make_lake(tmp_path)
    # Someone else's object under a key the sync is about to write.
    victim = data_files(partition_dir(lake, "trades", "binance", DAY2))[0]
    key = f"research/lake/{victim.relative_to(lake).as_posix()}"
    s3.put_object(Bucket=bucket, Key=key, Body=b"someone else's bytes", ChecksumAlgorithm="SHA256")
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 1
    err = capsys.readouterr().err
    assert f"conflict: s3://{bucket}/{key} exists with different content" in err
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"someone else's bytes"
    keys = all_keys(s3, bucket)
    assert f"research/lake/{manifest_key(DAY2)}" not in keys  # no manifest for an incomplete day
    assert f"research/lake/{manifest_key(DAY1)}" in keys  # the other day is fine

    # A day that changes locally after its sync (a late file) is refused as a whole.
    late = trade_rows("okx", DAY1, 50, seed=11, id_base=7_000_000)
    write_sink_file(lake, "trades", late, "late", 0, 49)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--date", DAY1.isoformat())) == 1
    err = capsys.readouterr().err
    assert "2024-08-07 changed locally since it was synced" in err and "late-" in err
    assert all_keys(s3, bucket) == keys


def test_multipart_upload_checksum(tmp_path: Path, moto, s3, bucket: str, monkeypatch) -> None:
    monkeypatch.setattr(sync_mod, "MULTIPART_THRESHOLD", 5 * 1024 * 1024)
    monkeypatch.setattr(sync_mod, "PART_SIZE", 5 * 1024 * 1024)
    lake = tmp_path / "lake"
    rows = trade_rows("binance", DAY1, 120_000, seed=1)
    # Incompressible trade ids make a file of several MiB.
    rows = [(*r[:4], hashlib.sha256(str(i).encode()).hexdigest(), *r[5:]) for i, r in enumerate(rows)]
    path = write_sink_file(lake, "trades", rows, "big", 0, len(rows) - 1)
    assert path.stat().st_size > 5 * 1024 * 1024
    remote = S3Lake(f"s3://{bucket}/p", endpoint_url=moto.url)
    [report] = sync_lake(lake, remote, closed_before=TODAY)
    assert report.ok and report.manifest_written, report.problems
    manifest = remote.get_json(manifest_key(DAY1))
    assert manifest is not None
    [entry] = manifest["files"]
    assert entry["part_size"] == 5 * 1024 * 1024 and entry["checksum_sha256"].endswith("-2")
    assert s3.get_object(Bucket=bucket, Key=f"p/{entry['key']}")["Body"].read() == path.read_bytes()
    [again] = sync_lake(lake, remote, closed_before=TODAY)
    assert again.ok and not again.uploaded


def test_duckdb_over_s3_equals_local(tmp_path: Path, moto, bucket: str, capsys) -> None:
    lake = make_lake(tmp_path)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 0
    sql = (
        "SELECT exchange, date, symbol, count(*) AS n, count(DISTINCT trade_id) AS ids, min(ts_recv) AS t0 "
        f"FROM trades WHERE date < DATE '{TODAY}' GROUP BY ALL ORDER BY ALL"
    )
    capsys.readouterr()
    assert run_command(query_cmd, ["query", "--lake", str(lake), "--format", "csv", sql]) == 0
    local = capsys.readouterr().out
    s3_lake = f"s3://{bucket}/research/lake"
    argv = ["query", "--lake", s3_lake, "--endpoint-url", moto.url, "--format", "csv", sql]
    assert run_command(query_cmd, argv) == 0
    remote = capsys.readouterr().out
    assert remote == local
    assert local.count("\n") == 1 + 3 * 2 + 3  # header, 3 symbols x (binance, okx) on day 1, 3 on day 2
    # Every dataset has a view over S3, empty where nothing was written, with the lake's columns.
    with open_catalog(s3_lake, endpoint_url=moto.url) as cat:
        book = cat.query("SELECT * FROM book")
        assert book.num_rows == 0
        assert book.column_names == [*arrow_schema("book").names, "date"]
        assert cat.query("SELECT count(*) AS n FROM trades").column("n")[0].as_py() == 3_000 + 800 + 2_000
        assert sorted(cat.empty) == sorted(
            ["bbo", "book", "feed_events", "quality", *DERIVATIVE_DATASETS, "raw"]
        )


def test_bad_usage_exits_2(tmp_path: Path, moto, bucket: str, capsys) -> None:
    lake = make_lake(tmp_path)
    assert run_command(sync_cmd, ["sync", "--lake", str(lake), "--to", "/not/s3"]) == 2
    assert "/not/s3" in capsys.readouterr().err  # named, whichever layer (config or sync) refuses it
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--date", TODAY.isoformat())) == 2
    assert "not closed yet" in capsys.readouterr().err
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--date", "2020-01-01")) == 2
    assert run_command(sync_cmd, sync_argv(tmp_path / "nope", moto, bucket)) == 2


def test_unfinished_sink_files_are_not_synced(tmp_path: Path, moto, s3, bucket: str, capsys) -> None:
    lake = make_lake(tmp_path)
    part = partition_dir(lake, "trades", "binance", DAY2)
    orphan = trade_rows("binance", DAY2, 5, seed=8, id_base=8_000_000)
    write_orphan(part / "c-00000000000000999000-00000000000000999004.parquet", "trades", orphan)
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket)) == 1
    captured = capsys.readouterr()
    assert "2024-08-08: NOT SYNCED" in captured.out and "c-00000000000000999000" in captured.out
    assert not [k for k in all_keys(s3, bucket) if "date=2024-08-08" in k]


def test_metrics_file_for_the_alert_rules(tmp_path: Path, moto, s3, bucket: str, capsys) -> None:
    """The sync alert reads ticktape_sync_failures_total and ..._last_success_timestamp_seconds."""
    from prometheus_client.parser import text_string_to_metric_families

    def values(path: Path) -> dict[str, float]:
        return {
            s.name: s.value
            for fam in text_string_to_metric_families(path.read_text())
            for s in fam.samples
            if not s.name.endswith("_created")
        }

    lake = make_lake(tmp_path)
    prom = tmp_path / "sync.prom"
    assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--metrics-file", str(prom))) == 0
    first = values(prom)
    assert first["ticktape_sync_failures_total"] == 0
    assert first["ticktape_sync_last_success_timestamp_seconds"] > 0
    assert first["ticktape_sync_last_run_uploaded_bytes"] > 0
    key = next(k for k in all_keys(s3, bucket) if k.endswith(".parquet"))
    s3.put_object(Bucket=bucket, Key=key, Body=b"tampered", ChecksumAlgorithm="SHA256")
    for expected_failures in (1, 2):
        assert run_command(sync_cmd, sync_argv(lake, moto, bucket, "--metrics-file", str(prom))) == 1
        now = values(prom)
        assert now["ticktape_sync_failures_total"] == expected_failures
        assert (
            now["ticktape_sync_last_success_timestamp_seconds"]
            == first["ticktape_sync_last_success_timestamp_seconds"]
        )
        assert now["ticktape_sync_last_run_problems"] == 1
