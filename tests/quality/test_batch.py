"""``ticktape quality`` over a lake: the Binance sample (host clock 1.27 s behind) and a 30 s incident."""

from __future__ import annotations

import json

import pytest

from quality.batch import LakeFilter, lake_quality
from schemas import Flags
from storage.catalog import open_catalog
from tests.storage.lakegen import write_sink_file
from ticktape.cli import main
from ticktape.commands.replay import replay_to_lake

NS = 1_000_000_000
MS = 1_000_000


def true_offset_s(samples) -> float:
    """Median of ``recv - E`` over the depth events of the sample, straight from the capture text."""
    import gzip

    values = []
    with gzip.open(samples / "binance" / "ethusdt_20240808.capture.gz", "rt") as fh:
        for line in fh:
            ts, _, frame = line.rstrip("\n").partition(" ")
            data = json.loads(frame)["data"]
            if "@depth@" in json.loads(frame)["stream"]:
                values.append(int(ts) - data["E"] * 1_000_000)
    values.sort()
    return values[len(values) // 2] / NS


@pytest.fixture(scope="module")
def binance_lake(tmp_path_factory, samples):
    lake = tmp_path_factory.mktemp("lake")
    replay_to_lake(samples / "binance" / "ethusdt_20240808.capture.gz", "binance", lake)
    return lake


def test_binance_sample_clock_offset_within_50ms_and_no_negative_latency(binance_lake, samples, capsys):
    assert main(["quality", "--lake", str(binance_lake), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    truth = true_offset_s(samples)
    assert -1.30 < truth < -1.25
    rows = {(r["exchange"], r["channel"]): r for r in report}
    assert set(rows) >= {("binance", "all"), ("binance", "trades"), ("binance", "book"), ("binance", "bbo")}
    overall = rows[("binance", "all")]
    assert abs(overall["clock_offset_estimate_s"] - truth) < 0.050
    assert "host clock behind" in overall["clock_suspect"]
    assert overall["negative_raw_latencies"] > 0  # the raw figures were negative ...
    for r in report:  # ... the reported latencies are not
        for key in ("latency_p50_s", "latency_p99_s", "latency_max_s"):
            assert r[key] is None or r[key] >= 0, (r["channel"], key, r[key])
    assert overall["latency_p50_s"] < 0.05
    assert overall["outdated_ratio"] < 0.01
    assert overall["gaps"] == 0
    # bookTicker carries no event time: counted, but no latency
    assert rows[("binance", "bbo")]["timed_messages"] == 0 and rows[("binance", "bbo")]["messages"] > 1000
    assert overall["state"] == "DEGRADED"  # fresh data, but a host clock 1.27 s off costs the clock points

    assert main(["quality", "--lake", str(binance_lake)]) == 0
    table = capsys.readouterr().out
    assert "clock offset" in table and "binance" in table and "host clock behind" in table


def test_incident_lake_is_excluded_and_bad_arguments_are_clear(tmp_path, capsys):
    t0 = 1_723_161_254 * NS
    rows, events = [], []
    for exchange in ("okx", "bybit"):
        for i in range(1200):  # two minutes at 10 messages per second
            recv = t0 + i * 100 * MS
            lag = 30 * NS if exchange == "okx" and i >= 300 else 0
            flags = int(Flags.OUTDATED) if lag else 0
            rows.append((exchange, "BTC-USDT", recv - 3 * MS - lag, recv, str(i), 1.0, 1.0, "buy", flags))
    events.append(("bybit", "BTC-USDT", "book", t0 + NS, "gap", "{}"))
    for exchange in ("okx", "bybit"):
        write_sink_file(tmp_path, "trades", [r for r in rows if r[0] == exchange], "s", 0, 1)
    write_sink_file(tmp_path, "feed_events", events, "s", 0, 1)
    with open_catalog(str(tmp_path)) as catalog:
        report = lake_quality(catalog.con)
        only = lake_quality(catalog.con, where=LakeFilter(exchange="bybit", date="2024-08-08"))
    by = {(r["exchange"], r["channel"]): r for r in report}
    okx = by[("okx", "all")]
    assert okx["state"] == "EXCLUDE" and "event time behind" in okx["reasons"]
    assert okx["outdated_ratio"] == 0.75
    assert abs(okx["clock_offset_estimate_s"] - 0.003) < 0.001  # the floor did not follow the incident
    bybit = by[("bybit", "all")]
    assert bybit["gaps"] == 1 and bybit["score"] == 95.0 and bybit["state"] == "OK"
    assert {r["exchange"] for r in only} == {"bybit"}

    assert main(["quality", "--lake", str(tmp_path / "missing")]) == 2
    assert "lake directory not found" in capsys.readouterr().err
    assert main(["quality", "--lake", str(tmp_path), "--date", "yesterday"]) == 2
    capsys.readouterr()
    # an exchange the lake does not hold: a usage error naming the ones it does
    assert main(["quality", "--lake", str(tmp_path), "--exchange", "kraken"]) == 2
    assert "no exchange 'kraken'" in capsys.readouterr().err
