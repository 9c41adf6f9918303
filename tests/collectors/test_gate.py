"""Gate spot (``gate``) and USDT perpetuals (``gate-futures``): real recordings, documented examples, the
``U <= baseId+1 <= u`` sync rule, and both simulators through a real websocket.

The recordings (``../shared/samples/gate``, 2021-04-22, and ``gate-futures``, 2023-05-24) are cryptofeed
captures: the REST snapshots it fetched sit in ``*.requests.jsonl.gz``, not in the capture. The fixture
injects each one into the stream at the time it was received, wrapped as this dialect wraps them
(``snapshot_frame``), which is exactly what a live collector writes. What differs from the current API
(documented, checked 2026-12-05):
- 2021 spot trades have no ``range``/``id_market`` (added 2025-01-08); 2021 spot REST snapshots carry only
  ``id`` (no ``current``/``update``), so their rows have a null exchange time;
- 2023 futures sizes are integers; since 2025-12-09 they are decimal strings with ``X-Gate-Size-Decimal: 1``
  (both parsed, tested with the documented examples below);
- neither recording has ``full`` (2025) or a spot ``book_ticker``; the futures recording has no trades
  (none happened in its 30 s). The documented examples cover those.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest

from collectors.capture import replay_capture
from collectors.registry import get_dialect
from collectors.venues.gate.common import decimal_ms_to_ns, snapshot_frame
from collectors.venues.gate.futures import GateFuturesDialect, GateFuturesNormaliser
from collectors.venues.gate.spot import GateSpotDialect, GateSpotNormaliser
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import assert_tops_match_bbo, tops_by_seq
from tests.collectors.test_connection import running

VENUES = {
    "gate": ("spot", "currency_pair", GateSpotNormaliser),
    "gate-futures": ("futures", "contract", GateFuturesNormaliser),
}


def merged_capture(samples: Path, venue: str, out: Path) -> tuple[Path, list[tuple[int, dict[str, Any]]]]:
    """The recording with its REST snapshots injected at their receive times; also the frames, decoded."""
    prefix, param, _ = VENUES[venue]
    frames: list[tuple[int | None, bytes]] = []
    with gzip.open(samples / venue / f"{venue}_cryptofeed.capture.gz", "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\n")
            if not line:
                frames.append((None, b""))
                continue
            ts, _, text = line.partition(b" ")
            frames.append((int(ts), text))
    rests: list[tuple[int, bytes]] = []
    with gzip.open(samples / venue / f"{venue}_cryptofeed.requests.jsonl.gz", "rt") as fh:
        for line in fh:
            rest = json.loads(line).get("rest")
            if rest and "/order_book" in rest["url"]:
                native = parse_qs(urlparse(rest["url"]).query)[param][0]
                rests.append((rest["ts_ns"], snapshot_frame(prefix, native, rest["body"]).encode()))
    merged: list[tuple[int | None, bytes]] = []
    i = 0
    for ts, text in frames:
        while i < len(rests) and ts is not None and rests[i][0] < ts:
            merged.append(rests[i])
            i += 1
        merged.append((ts, text))
    merged.extend(rests[i:])
    with open(out, "wb") as fh:
        for ts, text in merged:
            fh.write(b"\n" if ts is None else b"%d %s\n" % (ts, text))
    decoded = [(ts, orjson.loads(text)) for ts, text in merged if ts is not None]
    return out, decoded


@pytest.fixture(scope="module")
def spot(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordBuffer, list[Any]]:
    path, frames = merged_capture(samples, "gate", tmp_path_factory.mktemp("gate") / "gate.capture")
    return replay_capture(GateSpotNormaliser(), path), frames


@pytest.fixture(scope="module")
def futures(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RecordBuffer, list[Any]]:
    path, frames = merged_capture(samples, "gate-futures", tmp_path_factory.mktemp("gf") / "gf.capture")
    return replay_capture(GateFuturesNormaliser(), path), frames


def pushes(frames: list[Any], channel: str) -> list[tuple[int, Any]]:
    return [
        (ts, f["result"]) for ts, f in frames if f.get("channel") == channel and f.get("event") == "update"
    ]


# -- spot recording -------------------------------------------------------------------------------
def test_spot_trades_equal_the_messages_field_by_field(spot) -> None:
    records, frames = spot
    trades = pushes(frames, "spot.trades")
    assert len(records.trades) == len(trades) == 9
    for (ts, t), row in zip(trades, records.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert exchange == "gate" and symbol == t["currency_pair"].replace("_", "-")
        assert ts_recv == ts and trade_id == str(t["id"])
        assert (price, size, side) == (float(t["price"]), float(t["amount"]), t["side"])
        ms, _, frac = t["create_time_ms"].partition(".")
        assert ts_ex == int(ms) * 1_000_000 + int(frac.ljust(6, "0")[:6])
    # "1619093543708.2642" ms keeps its fraction: 1619093543708264200 ns
    assert records.trades[0][2] == 1_619_093_543_708_264_200


def test_spot_recording_syncs_every_book_once_without_false_gap(spot) -> None:
    records, _frames = spot
    kinds = [e[4] for e in records.feed_events]
    assert kinds == [], records.feed_events[:5]  # no gap, no duplicate, no parse error, no resync
    snap_rows = [r for r in records.book if r[7]]
    assert len({r[1] for r in snap_rows}) == 10 and {r[9] for r in records.book} == {0}
    assert all(r[10] & Flags.SNAPSHOT and r[2] is None for r in snap_rows)  # 2021 REST: no time
    assert (len(records.book), len(snap_rows)) == (1900, 1541)


@pytest.mark.parametrize("venue", ["gate", "gate-futures"])
def test_first_applied_push_straddles_the_snapshot_id(venue: str, spot, futures) -> None:
    """Each book's first applied push satisfies ``U <= baseId+1 <= u``, then ``U == previous u + 1``."""
    records, frames = spot if venue == "gate" else futures
    prefix = VENUES[venue][0]
    base = {f["s"]: f["data"]["id"] for _, f in frames if f.get("channel") == f"{prefix}.order_book_snapshot"}
    updates = pushes(frames, f"{prefix}.order_book_update")
    by_u = {(r["s"], r["u"]): r for _, r in updates}
    applied: dict[str, list[int]] = {}
    for row in records.book:
        native = row[1].removesuffix("-PERP").replace("-", "_")
        if not row[7] and (not applied.get(native) or applied[native][-1] != row[8]):
            applied.setdefault(native, []).append(row[8])
    assert len(applied) >= 5
    buffered_first = 0
    for native, seqs in applied.items():
        first = by_u[(native, seqs[0])]
        assert first["U"] <= base[native] + 1 <= first["u"]
        for prev, cur in itertools.pairwise(seqs):
            assert by_u[(native, cur)]["U"] == prev + 1
        ts_first = next(ts for ts, r in updates if r["s"] == native)
        ts_snap = next(ts for ts, f in frames if f.get("s") == native and "data" in f)
        buffered_first += ts_first < ts_snap
    assert buffered_first >= 5  # most books got pushes before their snapshot: they were buffered


# -- futures recording ---------------------------------------------------------------------------
def test_futures_book_tops_equal_book_ticker_at_equal_update_id(futures) -> None:
    records, frames = futures
    tickers = pushes(frames, "futures.book_ticker")
    assert len(records.bbo) == len(tickers) == 75
    for (ts, t), row in zip(tickers, records.bbo, strict=True):
        assert row[1] == t["s"].replace("_", "-") + "-PERP" and row[3] == ts
        assert row[2] == t["t"] * 1_000_000
        assert row[4:9] == (float(t["b"]), float(t["B"]), float(t["a"]), float(t["A"]), t["u"])
    # 18 tickers end at a push's last id; 56 fall inside a push's U..u range (the book never held that
    # state), 1 precedes its book's snapshot
    assert assert_tops_match_bbo(records.book, records.bbo) == 18


def test_futures_recording_has_no_false_gap_and_sizes_in_contracts(futures) -> None:
    records, frames = futures
    assert [e[4] for e in records.feed_events] == []
    assert len(records.trades) == 0 and len(records.book) == 2470
    snap = [r for r in records.book if r[7]]
    assert len({r[1] for r in snap}) == 10 and all(r[1].endswith("-PERP") for r in records.book)
    # snapshot time from the REST body's "update" (seconds with a fraction), exactly
    rdnt = next(f["data"] for _, f in frames if f.get("s") == "RDNT_USDT" and "data" in f)
    assert rdnt["update"] == 1684930166.35
    assert next(r[2] for r in snap if r[1] == "RDNT-USDT-PERP") == 1_684_930_166_350_000_000
    # sizes stay contracts, as sent (integers in 2023)
    level = rdnt["asks"][0]
    row = next(r for r in snap if r[1] == "RDNT-USDT-PERP" and r[4] == "ask" and r[5] == float(level["p"]))
    assert row[6] == float(level["s"])


# -- documented examples -------------------------------------------------------------------------
SPOT_TRADE_DOC = (
    '{"time":1606292218,"channel":"spot.trades","event":"update","result":{"id":309143071,'
    '"create_time":1606292218,"create_time_ms":"1606292218213.4578","side":"sell","currency_pair":"GT_USDT",'
    '"amount":"16.4700000000","price":"0.4705000000","range":"2390902-2390902","id_market":917144}}'
)
SPOT_TICKER_DOC = (
    '{"time":1606293275,"channel":"spot.book_ticker","event":"update","result":{"t":1606293275123,'
    '"u":48733182,"s":"BTC_USDT","b":"19177.79","B":"0.0003341504","a":"19179.38","A":"0.09"}}'
)
SPOT_FULL_DOC = (
    '{"time":1606294781,"time_ms":1606294781236,"channel":"spot.order_book_update","event":"update",'
    '"result":{"t":1606294781123,"full":true,"l":"100","e":"depthUpdate","E":1606294781,"s":"BTC_USDT",'
    '"U":48776301,"u":48776306,"b":[["19137.74","0.0001"],["19088.37","0"]],"a":[["19137.75","0.6135"]]}}'
)
FUTURES_TRADE_DOC = (
    '{"channel":"futures.trades","event":"update","time":1541503698,"time_ms":1541503698123,"result":'
    '[{"size":"-108","id":27753479,"create_time":1545136464,"create_time_ms":1545136464123,"price":"96.4",'
    '"contract":"BTC_USDT","is_internal":true}]}'
)
FUTURES_TICKER_DOC = (
    '{"time":1615366379,"time_ms":1615366379123,"channel":"futures.book_ticker","event":"update","result":'
    '{"t":1615366379123,"u":2517661076,"s":"BTC_USDT","b":"54696.6","B":"37000","a":"54696.7","A":"47061"}}'
)
FUTURES_UPDATE_DOC = (
    '{"time":1615366381,"time_ms":1615366381123,"channel":"futures.order_book_update","event":"update",'
    '"result":{"t":1615366381417,"s":"BTC_USDT","U":2517661101,"u":2517661113,"b":[{"p":"54672.1","s":"0"},'
    '{"p":"54664.5","s":"58794"}],"a":[{"p":"54743.6","s":"0"},{"p":"54742","s":"95"}],"l":"100"}}'
)


def test_documented_spot_trade_and_book_ticker() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    n.on_frame(1_606_292_219_000_000_000, SPOT_TRADE_DOC, out)
    n.on_frame(1_606_293_276_000_000_000, SPOT_TICKER_DOC, out)
    assert out.trades[0][:8] == (
        "gate",
        "GT-USDT",
        1_606_292_218_213_457_800,
        1_606_292_219_000_000_000,
        "309143071",
        0.4705,
        16.47,
        "sell",
    )
    assert out.bbo[0][1:9] == (
        "BTC-USDT",
        1_606_293_275_123_000_000,
        1_606_293_276_000_000_000,
        19177.79,
        0.0003341504,
        19179.38,
        0.09,
        48733182,
    )
    assert out.feed_events == []


def test_trade_without_ms_time_uses_seconds_and_string_ids_are_ids() -> None:
    n, out = GateFuturesNormaliser(), RecordBuffer()
    old = FUTURES_TRADE_DOC.replace('"create_time_ms":1545136464123,', "").replace("27753479", '"27753479"')
    n.on_frame(1, old, out)
    assert out.trades[0][2] == 1_545_136_464_000_000_000 and out.trades[0][4] == "27753479"
    for bad in ('"Infinity"', '"NaN"', '"1e400"', "-5"):
        n.on_frame(2, old.replace("1545136464,", f"{bad},").replace("27753479", "1"), out)
    assert [e[4] for e in out.feed_events] == ["parse_error"] * 4 and len(out.trades) == 1


def test_spot_trades_v2_pushes_are_trades_and_kept_once() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    n.on_frame(1, SPOT_TRADE_DOC.replace('"spot.trades"', '"spot.trades_v2"'), out)
    n.on_frame(2, SPOT_TRADE_DOC, out)
    assert [r[4] for r in out.trades] == ["309143071"] and [e[4] for e in out.feed_events] == ["duplicate"]


def test_documented_futures_trade_sign_is_the_taker_side_and_size_in_contracts() -> None:
    n, out = GateFuturesNormaliser(), RecordBuffer()
    n.on_frame(1_545_136_465_000_000_000, FUTURES_TRADE_DOC, out)
    n.on_frame(
        1_545_136_465_000_000_001,
        FUTURES_TRADE_DOC.replace('"-108"', "7").replace("27753479", "27753480"),
        out,
    )
    n.on_frame(
        1_545_136_465_000_000_002, FUTURES_TRADE_DOC.replace('"-108"', '"2.5"').replace("27753479", "1"), out
    )
    assert [r[1:] for r in out.trades] == [
        (
            "BTC-USDT-PERP",
            1_545_136_464_123_000_000,
            1_545_136_465_000_000_000,
            "27753479",
            96.4,
            108.0,
            "sell",
            0,
        ),
        (
            "BTC-USDT-PERP",
            1_545_136_464_123_000_000,
            1_545_136_465_000_000_001,
            "27753480",
            96.4,
            7.0,
            "buy",
            0,
        ),
        ("BTC-USDT-PERP", 1_545_136_464_123_000_000, 1_545_136_465_000_000_002, "1", 96.4, 2.5, "buy", 0),
    ]
    n.on_frame(1_545_136_465_000_000_003, FUTURES_TRADE_DOC, out)  # a repeat is dropped, and counted
    assert len(out.trades) == 3 and [e[4] for e in out.feed_events] == ["duplicate"]


def test_documented_futures_book_ticker_and_decimal_sizes() -> None:
    n, out = GateFuturesNormaliser(), RecordBuffer()
    n.on_frame(1, FUTURES_TICKER_DOC, out)
    empty_bid = FUTURES_TICKER_DOC.replace('"b":"54696.6","B":"37000"', '"b":"","B":0')
    n.on_frame(2, empty_bid, out)
    assert out.bbo[0][4:9] == (54696.6, 37000.0, 54696.7, 47061.0, 2517661076)
    assert out.bbo[1][4:9] == (None, None, 54696.7, 47061.0, 2517661076)
    snapshot = snapshot_frame(
        "futures",
        "BTC_USDT",
        '{"id":2517661100,"current":1615366381.5,"update":1615366381.4,'
        '"asks":[{"p":"54742","s":3},{"p":"54743.6","s":"1.5"}],"bids":[{"p":"54672.1","s":10},{"p":"54664.5","s":4}]}',
    )
    n.on_frame(3, snapshot, out)
    n.on_frame(4, FUTURES_UPDATE_DOC, out)
    assert out.feed_events == []
    tops = tops_by_seq(out.book)
    assert tops[("BTC-USDT-PERP", 2517661113)] == ((54664.5, 58794.0), (54742.0, 95.0))


def test_full_push_replaces_the_book_without_rest() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    n.on_frame(1, SPOT_FULL_DOC, out)
    assert [r[7] for r in out.book] == [True, True] and {r[8] for r in out.book} == {48776306}
    assert n.snapshot_requests == set()
    nxt = (
        SPOT_FULL_DOC.replace('"full":true,', "")
        .replace("48776301", "48776307")
        .replace("48776306", "48776309")
    )
    n.on_frame(2, nxt.replace('["19137.74","0.0001"]', '["19137.74","0"]'), out)  # removes the bid
    assert out.feed_events == []
    assert tops_by_seq(out.book)[("BTC-USDT", 48776309)] == (None, (19137.75, 0.6135))


# -- the sync rule with pushes buffered before the snapshot ---------------------------------------
def update(native: str, first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    result = {"t": 1_700_000_000_000 + last, "s": native, "U": first, "u": last, "b": bids, "a": asks}
    return orjson.dumps({"channel": "spot.order_book_update", "event": "update", "result": result}).decode()


def spot_snapshot(native: str, base_id: int) -> str:
    body = {
        "id": base_id,
        "current": 1,
        "update": 1,
        "bids": [["99", "1"], ["98", "1"]],
        "asks": [["101", "1"]],
    }
    return snapshot_frame("spot", native, orjson.dumps(body))


def test_snapshot_sync_drops_stale_buffered_pushes_and_starts_at_the_straddling_one() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    n.on_frame(1, update("BTC_USDT", 96, 100, [["99", "5"]], []), out)  # u < baseId+1: dropped
    n.on_frame(2, update("BTC_USDT", 101, 104, [["98", "0"]], [["101", "2"]]), out)  # U <= 103 <= u: first
    n.on_frame(3, update("BTC_USDT", 105, 105, [["100", "3"]], []), out)
    assert n.snapshot_requests == {"BTC_USDT"} and out.book == []  # all buffered, snapshot asked for
    n.on_frame(4, spot_snapshot("BTC_USDT", 102), out)
    n.on_frame(5, update("BTC_USDT", 106, 106, [], [["101", "0"], ["102", "7"]]), out)
    assert out.feed_events == [] and n.snapshot_requests == set()
    assert [r[8] for r in out.book if not r[7]] == [104, 104, 105, 106, 106]
    tops = tops_by_seq(out.book)
    assert tops[("BTC-USDT", 102)] == ((99.0, 1.0), (101.0, 1.0))
    assert tops[("BTC-USDT", 104)] == ((99.0, 1.0), (101.0, 2.0))
    assert tops[("BTC-USDT", 106)] == ((100.0, 3.0), (102.0, 7.0))
    assert all(r[3] in (2, 3, 4, 5) for r in out.book)  # buffered rows keep their own receive times


def test_snapshot_older_than_every_buffered_push_is_refetched() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    n.on_frame(1, update("ETH_USDT", 110, 112, [["99", "5"]], []), out)
    n.on_frame(2, spot_snapshot("ETH_USDT", 100), out)  # baseId+1 = 101 < first U = 110
    assert [e[4] for e in out.feed_events] == ["gap"] and n.snapshot_requests == {"ETH_USDT"}
    assert orjson.loads(out.feed_events[0][5])["after_snapshot"] is True
    n.on_frame(3, spot_snapshot("ETH_USDT", 111), out)
    assert [e[4] for e in out.feed_events] == ["gap", "resync"] and n.snapshot_requests == set()
    assert tops_by_seq(out.book)[("ETH-USDT", 112)] == ((99.0, 5.0), (101.0, 1.0))


def test_gap_mid_stream_resyncs_that_symbol_only_and_repeats_are_counted() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    for native in ("BTC_USDT", "ETH_USDT"):
        n.on_frame(1, spot_snapshot(native, 10), out)
        n.on_frame(2, update(native, 11, 12, [["99", "2"]], []), out)
    n.on_frame(3, update("BTC_USDT", 11, 12, [["99", "2"]], []), out)  # a repeat
    n.on_frame(4, update("BTC_USDT", 15, 16, [["99", "3"]], []), out)  # 13-14 lost
    n.on_frame(5, update("ETH_USDT", 13, 13, [["99", "4"]], []), out)
    assert [(e[1], e[4]) for e in out.feed_events] == [("BTC-USDT", "duplicate"), ("BTC-USDT", "gap")]
    assert n.snapshot_requests == {"BTC_USDT"}
    n.on_frame(6, update("BTC_USDT", 17, 17, [["99", "9"]], []), out)  # buffered while waiting
    n.on_frame(7, spot_snapshot("BTC_USDT", 16), out)
    assert [e[4] for e in out.feed_events][-1] == "resync"
    assert {r[9] for r in out.book if r[1] == "BTC-USDT" and r[8] == 17} == {1}
    assert {r[9] for r in out.book if r[1] == "ETH-USDT"} == {0}


def test_decimal_ms_to_ns() -> None:
    assert decimal_ms_to_ns("1606292218213.4578") == 1_606_292_218_213_457_800
    assert decimal_ms_to_ns(1545136464123) == 1_545_136_464_123_000_000
    assert decimal_ms_to_ns("1606292218213") == 1_606_292_218_213_000_000


@pytest.mark.parametrize(
    "bad",
    [
        '{"channel":"spot.trades","event":"update","result":{"id":1,"create_time_ms":"1.5","side":"sell",'
        '"currency_pair":"../X_USDT","amount":"1","price":"1"}}',
        '{"channel":"spot.trades","event":"update","result":{"id":1,"create_time_ms":"1606292218213.4",'
        '"side":"sell","currency_pair":"GT_USDT","amount":"1","price":"NaN"}}',
        '{"channel":"spot.trades","event":"update","result":{"id":"x","create_time_ms":"1606292218213.4",'
        '"side":"buy","currency_pair":"GT_USDT","amount":"1","price":"1"}}',
        '{"channel":"spot.trades","event":"update","result":[1,2]}',
        '{"channel":"spot.order_book_update","event":"update","result":{"t":1,"s":"GT_USDT","U":5,"u":4}}',
        '{"channel":"spot.order_book_update","event":"update","result":{"t":1700000000000,"s":"GT_USDT",'
        '"U":1,"u":2,"b":[["-1","2"]],"a":[]}}',
        '{"channel":"spot.book_ticker","event":"update","result":{"t":1,"u":1,"s":"GT_USDT","b":"1e999",'
        '"B":"1","a":"2","A":"1"}}',
        '{"channel":"spot.nonsense","event":"update","result":{}}',
        '{"channel":"spot.trades"',
        "[1]",
    ],
)
def test_hostile_spot_frames_are_parse_errors_and_trades_keep_flowing(bad: str) -> None:
    assert_parse_error_then_flowing(GateSpotNormaliser(), bad, SPOT_TRADE_DOC, ["309143071"])


def test_hostile_futures_frames_are_parse_errors() -> None:
    for bad in (
        FUTURES_TRADE_DOC.replace('"-108"', '"0"'),
        FUTURES_TRADE_DOC.replace('"-108"', "true"),
        FUTURES_TRADE_DOC.replace('"BTC_USDT"', '"BTC_USDT_X"'),
        FUTURES_UPDATE_DOC.replace('{"p":"54672.1","s":"0"}', '["54672.1","0"]'),
    ):
        assert_parse_error_then_flowing(
            GateFuturesNormaliser(), bad, FUTURES_TRADE_DOC.replace("27753479", "5"), ["5"]
        )


def test_replies_pong_and_upgrade_notice() -> None:
    n, out = GateSpotNormaliser(), RecordBuffer()
    n.on_frame(1, '{"time":1,"channel":"spot.pong","event":"","error":null,"result":null}', out)
    n.on_frame(2, '{"time":1,"channel":"spot.trades","event":"subscribe","result":{"status":"success"}}', out)
    n.on_frame(
        3,
        '{"time":1,"channel":"spot.trades","event":"subscribe","error":{"code":2,"message":"unknown currency pair"},'
        '"result":null}',
        out,
    )
    n.on_frame(4, '{"type":"upgrade","msg":"The connection will soon be closed for a service upgrade."}', out)
    assert [e[4] for e in out.feed_events] == ["subscribe_error", "venue_notice"]


def test_dialects_endpoints_and_subscriptions() -> None:
    from collectors.base import Subscription

    spot_d, fut_d = get_dialect("gate"), get_dialect("gate-futures")
    assert isinstance(spot_d, GateSpotDialect) and isinstance(fut_d, GateFuturesDialect)
    sub = Subscription(("BTC_USDT", "ETH_USDT"))
    assert spot_d.connection_url(spot_d.default_ws_url, sub) == "wss://api.gateio.ws/ws/v4/"
    assert fut_d.connection_url(fut_d.default_ws_url, sub) == "wss://fx-ws.gateio.ws/v4/ws/usdt"
    frames = [orjson.loads(f) for f in fut_d.subscribe_frames(sub)]
    assert [(f["channel"], f["payload"]) for f in frames] == [
        ("futures.trades", ["BTC_USDT", "ETH_USDT"]),
        ("futures.order_book_update", ["BTC_USDT", "100ms", "100"]),
        ("futures.order_book_update", ["ETH_USDT", "100ms", "100"]),
        ("futures.book_ticker", ["BTC_USDT", "ETH_USDT"]),
    ]
    assert orjson.loads(spot_d.subscribe_frames(sub)[1])["payload"] == ["BTC_USDT", "100ms"]
    assert (
        spot_d.native_symbol("btc-usdt") == "BTC_USDT" and fut_d.native_symbol("BTC-USDT-PERP") == "BTC_USDT"
    )
    assert spot_d.normalise_symbol("BTC_USDT") == "BTC-USDT"
    assert fut_d.normalise_symbol("BTC_USDT") == "BTC-USDT-PERP"
    assert fut_d.ws_headers == {"X-Gate-Size-Decimal": "1"}


# -- simulators through a real websocket ----------------------------------------------------------
@pytest.mark.parametrize("exchange", ["gate", "gate-futures"])
async def test_simulator_round_trip_drop_resyncs_only_that_symbol(exchange: str, tmp_path: Path) -> None:
    suffix = "-PERP" if exchange == "gate-futures" else ""
    btc, eth = f"BTC-USDT{suffix}", f"ETH-USDT{suffix}"
    capture = tmp_path / "live.capture.gz"
    async with running(exchange, symbols=("BTC_USDT", "ETH_USDT"), capture=capture) as run:
        await run.until(
            lambda: all(run.count(d, s) > 5 for d in ("trades", "book", "bbo") for s in (btc, eth))
        )
        run.sim.faults.drop_updates["BTC_USDT"] = 1
        await run.until(lambda: len(run.events("resync", btc)) == 1)
        eth_before = run.count("book", eth)
        await run.until(lambda: run.count("book", eth) > eth_before + 20)
        await asyncio.sleep(0.2)
    assert len(run.events("gap", btc)) == 1
    assert run.events("gap", eth) == [] and run.events("resync", eth) == []
    assert {r[9] for r in run.got.book if r[1] == btc} == {0, 1}
    assert run.events("parse_error") == [] and run.events("subscribe_error") == []
    assert assert_tops_match_bbo(run.got.book, run.got.bbo) > 20
    if exchange == "gate-futures":  # the handshake asked for decimal sizes: they arrive as strings
        with gzip.open(capture, "rt") as fh:
            sizes = [
                t["size"]
                for line in fh
                if '"futures.trades"' in line and '"update"' in line
                for t in orjson.loads(line.split(" ", 1)[1])["result"]
            ]
        assert sizes and all(isinstance(s, str) for s in sizes)
    replayed = replay_capture(get_dialect(exchange).new_normaliser(), capture)
    assert replayed.trades == run.got.trades and replayed.book == run.got.book and replayed.bbo == run.got.bbo
    assert replayed.feed_events == [e for e in run.got.feed_events if e[2] != "connection"]


# -- derivatives channels (issue 15): documented examples -----------------------------------------
# futures.public_liquidates, the page's example as of 2026-08-20 (aggregated, ``time`` in ms, decimal
# sizes with X-Gate-Size-Decimal: 1) and its integer-size form; the recording has no such push.
LIQUIDATES_DOC = (
    '{"channel":"futures.public_liquidates","event":"update","time":1541505434,"time_ms":1541505434123,'
    '"result":[{"price":"215.1","size":"-124.5","time":1541486601123,"contract":"BTC_USDT"},'
    '{"price":"215.2","size":"-10.5","time":1541486601456,"contract":"BTC_USDT"}]}'
)
LIQUIDATES_INT_DOC = (
    '{"channel":"futures.public_liquidates","event":"update","time":1541505434,"time_ms":1541505434123,'
    '"result":[{"price":"215.1","size":-124,"time":1541486601123,"contract":"BTC_USDT"},'
    '{"price":"215.2","size":-10,"time":1541486601456,"contract":"BTC_USDT"}]}'
)
# the example before 2026-08-20: ``time`` in seconds
LIQUIDATES_OLD_DOC = (
    '{"channel":"futures.public_liquidates","event":"update","time":1541505434,"time_ms":1541505434123,'
    '"result":[{"price":"215.1","size":-124,"time":1541486601,"contract":"BTC_USDT"}]}'
)
# futures.tickers: the ticker object's documented fields (REST v4 FuturesTicker names), values of the
# page's example; the push's time_ms is every row's exchange time
TICKERS_DOC = (
    '{"time":1541659086,"time_ms":1541659086123,"channel":"futures.tickers","event":"update",'
    '"result":[{"contract":"BTC_USDT","last":"118.4","change_percentage":"0.77","funding_rate":"-0.000114",'
    '"funding_rate_indicative":"0.01875","mark_price":"118.35","index_price":"118.36","total_size":"73648",'
    '"volume_24h":"745487577","volume_24h_btc":"117","volume_24h_usd":"419950","quanto_base_rate":"",'
    '"volume_24h_quote":"1665006","volume_24h_settle":"178","volume_24h_base":"5526","low_24h":"99.2",'
    '"high_24h":"132.5"}]}'
)


def test_documented_liquidations_every_value_and_time() -> None:
    n, out = GateFuturesNormaliser(), RecordBuffer()
    n.on_frame(7, LIQUIDATES_DOC, out)
    n.on_frame(8, LIQUIDATES_INT_DOC, out)
    n.on_frame(9, LIQUIDATES_OLD_DOC, out)
    assert out.feed_events == []
    # (exchange, symbol, ts_exchange, ts_recv, liquidation_id, side, price, size, flags[time flags])
    assert [r[:8] for r in out.liquidations] == [
        ("gate-futures", "BTC-USDT-PERP", 1541486601123_000_000, 7, None, "sell", 215.1, 124.5),
        ("gate-futures", "BTC-USDT-PERP", 1541486601456_000_000, 7, None, "sell", 215.2, 10.5),
        ("gate-futures", "BTC-USDT-PERP", 1541486601123_000_000, 8, None, "sell", 215.1, 124.0),
        ("gate-futures", "BTC-USDT-PERP", 1541486601456_000_000, 8, None, "sell", 215.2, 10.0),
        ("gate-futures", "BTC-USDT-PERP", 1541486601_000_000_000, 9, None, "sell", 215.1, 124.0),
    ]
    positive = LIQUIDATES_OLD_DOC.replace('"size":-124', '"size":3').replace(
        '"time":1541486601,', '"time_ms":5,'
    )
    n.on_frame(10, positive, out)
    assert out.liquidations[-1][2:8] == (5_000_000, 10, None, "buy", 215.1, 3.0)


def test_documented_ticker_gives_mark_funding_and_open_interest_rows() -> None:
    n, out = GateFuturesNormaliser(), RecordBuffer()
    n.on_frame(11, TICKERS_DOC, out)
    assert out.feed_events == []
    ts = 1541659086123_000_000
    assert [r[:6] for r in out.mark_price] == [("gate-futures", "BTC-USDT-PERP", ts, 11, 118.35, 118.36)]
    assert [r[:7] for r in out.funding] == [
        ("gate-futures", "BTC-USDT-PERP", ts, 11, -0.000114, 0.01875, None)
    ]
    assert [r[:6] for r in out.open_interest] == [("gate-futures", "BTC-USDT-PERP", ts, 11, 73648.0, None)]
    # a ticker without some fields makes rows only for what it carries; an empty index is null
    partial = TICKERS_DOC.replace('"funding_rate":"-0.000114",', "").replace('"118.36"', '""')
    partial = partial.replace('"total_size":"73648",', "")
    n.on_frame(12, partial, out)
    assert out.mark_price[-1][3:6] == (12, 118.35, None)
    assert len(out.funding) == 1 and len(out.open_interest) == 1


def test_hostile_derivative_pushes_are_parse_errors_without_partial_rows() -> None:
    for bad in (
        LIQUIDATES_DOC.replace('"-10.5"', '"0"'),
        LIQUIDATES_DOC.replace('"215.2"', '"-1"'),
        LIQUIDATES_DOC.replace('"215.2"', '"NaN"'),
        LIQUIDATES_DOC.replace('"time":1541486601456', '"time":true'),
        LIQUIDATES_DOC.replace('"result":[', '"result":{"x":[').replace("]}", "]}}"),
        TICKERS_DOC.replace('"-0.000114"', '"5"'),
        TICKERS_DOC.replace('"118.35"', '"-118.35"'),
        TICKERS_DOC.replace('"73648"', '"-1"'),
        TICKERS_DOC.replace('"BTC_USDT"', '"../X"'),
        TICKERS_DOC.replace('"time_ms":1541659086123,', ""),
    ):
        n, out = GateFuturesNormaliser(), RecordBuffer()
        n.on_frame(1, bad, out)
        assert [e[4] for e in out.feed_events] == ["parse_error"], bad
        assert not (out.liquidations or out.mark_price or out.funding or out.open_interest), bad
        n.on_frame(2, TICKERS_DOC, out)
        assert len(out.mark_price) == 1


def test_futures_subscribes_derivatives_channels_once_for_all_symbols() -> None:
    from collectors.base import Subscription

    fut_d = get_dialect("gate-futures")
    assert set(fut_d.channels) >= {"funding", "mark", "open_interest", "liquidations"}
    sub = Subscription(
        ("BTC_USDT", "ETH_USDT"), channels=("funding", "mark", "open_interest", "liquidations")
    )
    frames = [orjson.loads(f) for f in fut_d.subscribe_frames(sub)]
    assert [(f["channel"], f["payload"]) for f in frames] == [
        ("futures.tickers", ["BTC_USDT", "ETH_USDT"]),
        ("futures.public_liquidates", ["BTC_USDT", "ETH_USDT"]),
    ]
    assert "funding" not in get_dialect("gate").channels
