"""OKX v5 normaliser: the shared 2022 recording (real checksums), documented sequence rules, bad input."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from collectors.base import DialectOptions, Subscription
from collectors.book import L2Book
from collectors.capture import read_capture, replay_capture
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.okx import OkxDialect, OkxNormaliser, okx_checksum
from schemas import Flags, RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import assert_tops_match_bbo
from tests.collectors.test_connection import running

SAMPLE = "okx/okx_20220513.capture.gz"


@pytest.fixture(scope="module")
def sample_frames(samples: Path) -> list[tuple[int, dict]]:
    items = read_capture(samples / SAMPLE)
    return [(item[0], orjson.loads(item[1])) for item in items if isinstance(item, tuple)]


@pytest.fixture(scope="module")
def sample_run(samples: Path) -> tuple[OkxNormaliser, RecordBuffer]:
    n = OkxNormaliser()
    return n, replay_capture(n, samples / SAMPLE)


def _pushes(frames: list[tuple[int, dict]], channel: str) -> list[tuple[int, dict]]:
    return [(ts, f) for ts, f in frames if f.get("arg", {}).get("channel") == channel and "data" in f]


def test_trades_exact(sample_frames, sample_run) -> None:
    _, out = sample_run
    expected = [(ts, t) for ts, f in _pushes(sample_frames, "trades") for t in f["data"]]
    assert len(out.trades) == len(expected) == 74
    symbols = {"BTC-USDT": "BTC-USDT", "UNI-USD-SWAP": "UNI-USD-PERP", "BTC-USD-220527": "BTC-USD-220527"}
    for (ts, t), row in zip(expected, out.trades, strict=True):
        exchange, symbol, ts_ex, ts_recv, trade_id, price, size, side, _flags = row
        assert (exchange, symbol) == ("okx", symbols[t["instId"]])
        assert (ts_ex, ts_recv) == (int(t["ts"]) * 1_000_000, ts)
        assert (trade_id, price, size, side) == (t["tradeId"], float(t["px"]), float(t["sz"]), t["side"])


def test_trades_sent_on_subscribe_are_flagged_snapshot(sample_run) -> None:
    _, out = sample_run
    flagged = [(r[1], r[4]) for r in out.trades if r[8] & Flags.SNAPSHOT]
    # The first push per instrument, seconds older than the subscription, and nothing else.
    assert flagged == [("BTC-USD-220527", "7849"), ("UNI-USD-PERP", "12883020"), ("BTC-USDT", "338476307")]


def test_every_real_checksum_verifies_and_no_false_gaps(sample_frames, sample_run) -> None:
    n, out = sample_run
    books = _pushes(sample_frames, "books")
    assert n.checksums_verified == len(books) == 290
    assert out.feed_events == []
    assert n.resubscribe_requests == set()
    assert {r[9] for r in out.book} == {0}  # one epoch per book: no resync
    # OKX deletes the levels leaving its 400-level window itself: no truncation needed.
    assert (n.books["BTC-USDT"].book.depth("bid"), n.books["BTC-USDT"].book.depth("ask")) == (400, 400)


def test_book_rows_follow_the_wire(sample_frames, sample_run) -> None:
    _, out = sample_run
    books = _pushes(sample_frames, "books")
    first_update = next(f for _, f in books if f["action"] == "update" and f["arg"]["instId"] == "BTC-USDT")
    rows = [r for r in out.book if r[1] == "BTC-USDT" and not r[7]]
    entry = first_update["data"][0]
    wire = [("bid", float(p), float(s)) for p, s, *_ in entry["bids"]]
    wire += [("ask", float(p), float(s)) for p, s, *_ in entry["asks"]]
    n = len(wire)
    assert [(r[4], r[5], r[6]) for r in rows[:n]] == wire
    assert all(r[2] == int(entry["ts"]) * 1_000_000 and r[8] is None for r in rows[:n])
    snapshot_rows = [r for r in out.book if r[7]]
    assert {r[1] for r in snapshot_rows} == {"BTC-USDT", "UNI-USD-PERP", "BTC-USD-220527"}
    assert all(r[10] & Flags.SNAPSHOT for r in snapshot_rows)


def test_tickers_are_bbo_rows_without_sequence(sample_frames, sample_run) -> None:
    _, out = sample_run
    ticks = [(ts, t) for ts, f in _pushes(sample_frames, "tickers") for t in f["data"]]
    assert len(out.bbo) == len(ticks) == 28
    for (ts, t), row in zip(ticks, out.bbo, strict=True):
        assert row[2:4] == (int(t["ts"]) * 1_000_000, ts)
        assert row[4:9] == (float(t["bidPx"]), float(t["bidSz"]), float(t["askPx"]), float(t["askSz"]), None)


# -- documented message forms (current API: seqId / prevSeqId; checksum now deprecated) ---------------

INST = "BTC-USDT"


def _levels(levels: list[tuple[str, str]]) -> list[list[str]]:
    return [[p, s, "0", "1"] for p, s in levels]


def _book_msg(
    action: str,
    seq: int,
    prev: int,
    bids: list[tuple[str, str]] = (),  # type: ignore[assignment]
    asks: list[tuple[str, str]] = (),  # type: ignore[assignment]
    inst: str = INST,
    checksum: int | None = None,
    book: L2Book | None = None,
) -> bytes:
    entry: dict[str, Any] = {
        "asks": _levels(list(asks)),
        "bids": _levels(list(bids)),
        "ts": "1700000000000",
        "prevSeqId": prev,
        "seqId": seq,
    }
    if checksum is not None:
        entry["checksum"] = checksum
    return orjson.dumps({"arg": {"channel": "books", "instId": inst}, "action": action, "data": [entry]})


def _snapshot(seq: int = 10, inst: str = INST) -> bytes:
    return _book_msg("snapshot", seq, -1, bids=[("100.1", "1")], asks=[("100.5", "2")], inst=inst)


def test_documented_sequence_cases() -> None:
    # Snapshot prevSeqId -1 / seqId 10; normal update 10 -> 15; keep-alive 15 -> 15 with empty sides;
    # maintenance reset 15 -> 3 (seqId below prevSeqId); normal update 3 -> 5.
    n = OkxNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _snapshot(10), out)
    n.on_frame(2, _book_msg("update", 15, 10, bids=[("100.2", "3")]), out)
    n.on_frame(3, _book_msg("update", 15, 15), out)
    n.on_frame(4, _book_msg("update", 3, 15, asks=[("100.4", "1")]), out)
    n.on_frame(5, _book_msg("update", 5, 3, asks=[("100.4", "0")]), out)
    assert out.feed_events == []
    book = n.books[INST]
    assert book.synced and book.last_seq == 5
    assert book.book.best_bid() == (100.2, 3.0) and book.book.best_ask() == (100.5, 2.0)
    assert [r[8] for r in out.book if not r[7]] == [15, 3, 5]
    assert n.checksums_unverified == 5  # no checksum sent (deprecated by OKX): not a mismatch


def test_zero_checksum_means_not_sent() -> None:
    n = OkxNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _book_msg("snapshot", 10, -1, bids=[("1", "1")], asks=[("2", "1")], checksum=0), out)
    n.on_frame(2, _book_msg("update", 11, 10, bids=[("1.5", "1")], checksum=0), out)
    assert out.feed_events == [] and n.checksums_verified == 0 and n.checksums_unverified == 2


def _btc_eth_synced() -> tuple[OkxNormaliser, RecordBuffer]:
    n = OkxNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _snapshot(10, "BTC-USDT"), out)
    n.on_frame(2, _snapshot(10, "ETH-USDT-SWAP"), out)
    return n, out


def test_gap_resubscribes_only_that_instrument() -> None:
    n, out = _btc_eth_synced()
    n.on_frame(3, _book_msg("update", 30, 20, bids=[("100.2", "1")], inst="BTC-USDT"), out)  # 10..20 missing
    n.on_frame(4, _book_msg("update", 12, 10, bids=[("100.3", "1")], inst="ETH-USDT-SWAP"), out)
    gaps = [e for e in out.feed_events if e[4] == "gap"]
    assert [(e[1], orjson.loads(e[5])["expected_prevSeqId"]) for e in gaps] == [("BTC-USDT", 10)]
    assert n.resubscribe_requests == {"BTC-USDT"}
    assert not n.books["BTC-USDT"].synced and n.books["ETH-USDT-SWAP"].synced
    # Updates before the new snapshot cannot be applied; they are counted, not emitted.
    rows = len(out.book)
    n.on_frame(5, _book_msg("update", 31, 30, bids=[("100.2", "2")], inst="BTC-USDT"), out)
    assert len(out.book) == rows and n.updates_skipped == 1
    n.on_frame(6, _snapshot(40, "BTC-USDT"), out)
    resyncs = [e for e in out.feed_events if e[4] == "resync"]
    assert [(e[1], orjson.loads(e[5])["epoch"]) for e in resyncs] == [("BTC-USDT", 1)]
    assert {r[9] for r in out.book if r[1] == "ETH-USDT-PERP"} == {0}


def test_repeat_is_a_duplicate_and_backwards_sequence_is_not_applied() -> None:
    n = OkxNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _snapshot(10), out)
    upd = _book_msg("update", 15, 10, bids=[("100.2", "3")])
    n.on_frame(2, upd, out)
    n.on_frame(3, upd, out)  # the same message again
    n.on_frame(4, _book_msg("update", 8, 5, bids=[("99", "3")]), out)  # older than the book
    assert [e[4] for e in out.feed_events] == ["duplicate", "duplicate"]
    assert n.books[INST].synced and n.books[INST].last_seq == 15
    assert n.books[INST].book.depth("bid") == 2


def _checksummed(book: L2Book, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    for p, s in bids:
        book.set_level("bid", float(p), float(s), p, s)
    for p, s in asks:
        book.set_level("ask", float(p), float(s), p, s)
    return okx_checksum(book)


def test_checksum_mismatch_breaks_only_that_book_and_flags_its_rows() -> None:
    mirror = L2Book()
    n = OkxNormaliser()
    out = RecordBuffer()
    snap_b, snap_a = [("100.1", "1"), ("100.0", "2")], [("100.5", "2")]
    good = _checksummed(mirror, snap_b, snap_a)
    n.on_frame(1, _book_msg("snapshot", 10, -1, bids=snap_b, asks=snap_a, checksum=good), out)
    n.on_frame(2, _snapshot(10, "ETH-USDT"), out)
    ok = _checksummed(mirror, [("100.2", "3")], [])
    n.on_frame(3, _book_msg("update", 11, 10, bids=[("100.2", "3")], checksum=ok), out)
    assert out.feed_events == [] and n.checksums_verified == 2
    before = len(out.book)
    n.on_frame(4, _book_msg("update", 12, 11, bids=[("100.3", "1")], checksum=ok ^ 1), out)
    kinds = [(e[1], e[4]) for e in out.feed_events]
    assert kinds == [("BTC-USDT", "checksum_mismatch")]
    assert orjson.loads(out.feed_events[0][5])["checksum"] == ok ^ 1
    assert all(r[10] & Flags.MAYBE_BAD_BOOK for r in out.book[before:])
    assert n.resubscribe_requests == {"BTC-USDT"} and n.books["ETH-USDT"].synced


def test_checksum_verification_can_be_switched_off() -> None:
    n = OkxDialect(DialectOptions(verify_checksums=False)).new_normaliser()
    out = RecordBuffer()
    n.on_frame(1, _book_msg("snapshot", 10, -1, bids=[("1", "1")], asks=[("2", "1")], checksum=12345), out)
    assert out.feed_events == []


def test_checksum_is_interleaved_over_wire_strings() -> None:
    # Documented construction: bid1:ask1:bid2:ask2... of price:size strings, CRC32 read as signed.
    import zlib

    book = L2Book()
    got = _checksummed(
        book, [("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    )
    text = "3366.1:7:3366.8:9:3366:6:3368:8:3372:8"
    crc = zlib.crc32(text.encode())
    assert got == (crc - 2**32 if crc >= 2**31 else crc)
    # The same prices as other strings ("3366.10") give another checksum: strings, not floats.
    other = L2Book()
    assert (
        _checksummed(
            other, [("3366.10", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
        )
        != got
    )


def test_bbo_tbt_rows_carry_the_book_sequence() -> None:
    n = OkxNormaliser()
    out = RecordBuffer()
    msg = {
        "arg": {"channel": "bbo-tbt", "instId": "BTC-USDT-SWAP"},
        "data": [
            {
                "asks": [["8476.98", "415", "0", "13"]],
                "bids": [["8476.97", "256", "0", "12"]],
                "ts": "1597026383085",
                "seqId": 123,
            }
        ],
    }
    n.on_frame(1_597_026_383_100_000_000, orjson.dumps(msg), out)
    assert out.bbo == [
        (
            "okx",
            "BTC-USDT-PERP",
            1_597_026_383_085_000_000,
            1_597_026_383_100_000_000,
            8476.97,
            256.0,
            8476.98,
            415.0,
            123,
            0,
        )
    ]


def test_trades_dedupe_across_reconnects_and_current_aggregated_form() -> None:
    n = OkxNormaliser()
    out = RecordBuffer()
    trade = {
        "instId": "BTC-USDT",
        "tradeId": "130639474",
        "px": "42219.9",
        "sz": "0.12060306",
        "side": "buy",
        "ts": "1630048897897",
        "count": "3",
        "source": "0",
    }
    push = orjson.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [trade]})
    n.on_frame(1, push, out)
    n.on_disconnect(2, out)
    n.on_frame(
        3, b'{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}', out
    )
    n.on_frame(4, push, out)  # the latest trade, replayed on subscribe
    assert [r[4] for r in out.trades] == ["130639474"]
    assert out.trades[0][7] == "buy" and not out.trades[0][8] & Flags.SNAPSHOT
    assert [e[4] for e in out.feed_events] == ["duplicate"]


def test_control_messages() -> None:
    n = OkxNormaliser()
    out = RecordBuffer()
    n.on_frame(1, b"pong", out)
    n.on_frame(2, b'{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"x"}', out)
    n.on_frame(3, b'{"event":"unsubscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"x"}', out)
    n.on_frame(4, b'{"event":"channel-conn-count","channel":"books","connCount":"2","connId":"x"}', out)
    n.on_frame(
        5,
        b'{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:NOPE doesn\'t exist.","connId":"x"}',
        out,
    )
    n.on_frame(
        6,
        b'{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade.","connId":"x"}',
        out,
    )
    assert [e[4] for e in out.feed_events] == ["exchange_error", "notice"]
    assert orjson.loads(out.feed_events[0][5])["code"] == "60018"


GOOD_TRADE = b'{"arg":{"channel":"trades","instId":"ETH-USDT"},"data":[{"instId":"ETH-USDT","tradeId":"7","px":"2","sz":"3","side":"sell","ts":"1700000000000"}]}'


@pytest.mark.parametrize(
    "frame",
    [
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1',
        b'{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[]}',
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","sz":"1","side":"buy","ts":"1700000000000"}]}',
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"abc","sz":"1","side":"buy","ts":"1700000000000"}]}',
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"NaN","sz":"1","side":"buy","ts":"1700000000000"}]}',
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"-3","sz":"1","side":"buy","ts":"1700000000000"}]}',
        b'{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"3","sz":"1","side":"up","ts":"1700000000000"}]}',
        b'{"arg":{"channel":"trades","instId":"../../etc"},"data":[{"instId":"../../etc","tradeId":"1","px":"1","sz":"1","side":"buy","ts":"1700000000000"}]}',
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"replace","data":[]}',
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["x","1","0","1"]],"bids":[],"ts":"1700000000000","seqId":1,"prevSeqId":-1}]}',
        b'{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[],"bids":[],"ts":"1700000000000","seqId":"1"}]}',
        b'{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","bidPx":"1","bidSz":"1","askPx":"2","ts":"1"}]}',
        b'{"event":"mystery"}',
        b"\xff\xfe{",
        b"[1,2]",
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(frame: bytes) -> None:
    assert_parse_error_then_flowing(OkxNormaliser(), frame, GOOD_TRADE, ["7"])


def test_bad_level_leaves_book_untouched() -> None:
    n = OkxNormaliser()
    out = RecordBuffer()
    n.on_frame(1, _snapshot(10), out)
    rows = len(out.book)
    n.on_frame(2, _book_msg("update", 11, 10, bids=[("100.2", "1")], asks=[("-1", "1")]), out)
    assert len(out.book) == rows and [e[4] for e in out.feed_events] == ["parse_error"]
    assert n.books[INST].last_seq == 10 and n.books[INST].book.best_bid() == (100.1, 1.0)


def test_dialect_symbols_and_frames() -> None:
    d = get_dialect("okx")
    assert isinstance(d, OkxDialect)
    assert d.native_symbol("BTC-USDT-PERP") == "BTC-USDT-SWAP"
    assert d.native_symbol("btcusdt") == "BTC-USDT" and d.native_symbol("BTC-USD-220527") == "BTC-USD-220527"
    assert d.normalise_symbol("ETH-USDT-SWAP") == "ETH-USDT-PERP"
    assert d.normalise_symbol("BTC-USD-220527-30000-C") == "BTC-USD-220527-30000-C"
    sub = Subscription(("BTC-USDT", "ETH-USDT-SWAP"))
    assert d.connection_url("ws://127.0.0.1:9", sub) == "ws://127.0.0.1:9/ws/v5/public"
    (frame,) = d.subscribe_frames(sub)
    assert orjson.loads(frame) == {
        "op": "subscribe",
        "args": [
            {"channel": c, "instId": s}
            for s in ("BTC-USDT", "ETH-USDT-SWAP")
            for c in ("trades", "books", "bbo-tbt")
        ],
    }
    unsub, resub = d.resubscribe_frames(["ETH-USDT-SWAP"], sub)
    assert orjson.loads(unsub) == {
        "op": "unsubscribe",
        "args": [{"channel": "books", "instId": "ETH-USDT-SWAP"}],
    }
    assert orjson.loads(resub)["op"] == "subscribe"
    many = Subscription(tuple(f"X{i}-USDT" for i in range(150)))
    assert len(d.subscribe_frames(many)) == 5  # 450 arguments, 100 per request
    tickers = OkxDialect(DialectOptions(extra={"bbo_channel": "tickers"}))
    assert "tickers" in tickers.subscribe_frames(sub)[0]
    with pytest.raises(ValueError, match="bbo_channel"):
        OkxDialect(DialectOptions(extra={"bbo_channel": "books5"}))


# -- through the simulator, a real websocket and the shared connection lifecycle ---------------------

SYMBOLS = ("BTC-USDT", "ETH-USDT-SWAP")


def _normaliser(run: Any) -> OkxNormaliser:
    normaliser = run.collector.connections[0].normaliser
    assert isinstance(normaliser, OkxNormaliser)
    return normaliser


async def test_simulator_round_trip_books_match_bbo_and_checksums_verify() -> None:
    async with running("okx", SYMBOLS) as run:
        await run.until(
            lambda: (
                run.count("bbo", "ETH-USDT-PERP") > 100
                and run.count("bbo", "BTC-USDT") > 100
                and run.count("trades", "BTC-USDT") > 10
                and _normaliser(run).checksums_verified > 100
            )
        )
    kinds = {e[4] for e in run.got.feed_events}
    assert not kinds & {"parse_error", "gap", "checksum_mismatch", "resync", "exchange_error"}
    assert _normaliser(run).checksums_unverified == 0
    compared = assert_tops_match_bbo(run.got.book, run.got.bbo)
    assert compared > 150  # every bbo-tbt row has its seqId in the book
    assert {r[1] for r in run.got.trades} == {"BTC-USDT", "ETH-USDT-PERP"}


async def test_dropped_update_resubscribes_only_that_book() -> None:
    async with running("okx", SYMBOLS) as run:
        await run.until(lambda: run.count("book", "BTC-USDT") > 20)
        run.sim.faults.drop_updates["ETH-USDT-SWAP"] = 1
        await run.until(lambda: len(run.events("resync", "ETH-USDT-PERP")) == 1)
        btc_before = run.count("book", "BTC-USDT")
        await run.until(lambda: run.count("book", "BTC-USDT") > btc_before + 20)
        assert len(run.events("gap", "ETH-USDT-PERP")) == 1
        assert run.events("gap", "BTC-USDT") == [] and run.events("resync", "BTC-USDT") == []
        assert {r[9] for r in run.got.book if r[1] == "ETH-USDT-PERP"} == {0, 1}
        assert {r[9] for r in run.got.book if r[1] == "BTC-USDT"} == {0}
        assert run.collector.stats.connects == 1  # resynced by resubscribing, not by reconnecting


async def test_corrupted_checksum_is_detected_and_resynced() -> None:
    async with running("okx", SYMBOLS) as run:
        await run.until(lambda: run.count("book", "BTC-USDT") > 20)
        run.sim.faults.corrupt_checksums["BTC-USDT"] = 1
        await run.until(lambda: len(run.events("resync", "BTC-USDT")) == 1)
        (mismatch,) = run.events("checksum_mismatch", "BTC-USDT")
        detail = orjson.loads(mismatch[5])
        assert detail["checksum"] != detail["computed"]
        flagged = [r for r in run.got.book if r[10] & Flags.MAYBE_BAD_BOOK]
        assert flagged and {r[1] for r in flagged} == {"BTC-USDT"} and {r[9] for r in flagged} == {0}
        eth_before = run.count("book", "ETH-USDT-PERP")
        await run.until(lambda: run.count("book", "ETH-USDT-PERP") > eth_before + 20)
        assert run.events("checksum_mismatch", "ETH-USDT-PERP") == []
        assert run.events("gap") == []


async def test_reconnect_replays_the_last_trade_without_duplicating_it(tmp_path: Path) -> None:
    capture = tmp_path / "okx.capture"
    async with running("okx", SYMBOLS, capture=capture) as run:
        normalised = {"BTC-USDT": "BTC-USDT", "ETH-USDT-SWAP": "ETH-USDT-PERP"}

        def holds_the_last_trades() -> bool:
            got = {(r[1], r[4]) for r in run.got.trades}
            return all(
                inst in run.sim.last_trade and (normalised[inst], run.sim.last_trade[inst][0]) in got
                for inst in SYMBOLS
            )

        await run.until(
            lambda: (
                run.count("trades", "BTC-USDT") > 5
                and run.count("trades", "ETH-USDT-PERP") > 5
                and holds_the_last_trades()
            )
        )
        # The simulator replays its newest trade per instrument on subscribe; that replay is a
        # duplicate only if the collector already holds that trade. A trade made while the client
        # reconnects (or still queued at the disconnect) is rightly new. So, in the loop step that
        # saw the collector hold both newest trades, stop new trades until the replays came back.
        for market in run.sim.markets.values():
            market.trade_probability = 0.0
        await run.sim.disconnect_all()
        await run.until(lambda: run.collector.stats.connects >= 2 and len(run.events("duplicate")) >= 2)
        await run.until(lambda: len(run.events("resync", "BTC-USDT")) == 1)
        for market in run.sim.markets.values():
            market.trade_probability = 0.35
        before = run.count("trades", "BTC-USDT")
        await run.until(lambda: run.count("trades", "BTC-USDT") > before)  # trades flow again
    ids = [(r[1], r[4]) for r in run.got.trades]
    assert len(ids) == len(set(ids))
    dupes = {orjson.loads(e[5])["trade_id"] for e in run.events("duplicate") if e[2] == "trades"}
    assert len(dupes) >= 2
    # Capture then replay gives the live run's records.
    replayed = replay_capture(get_dialect("okx").new_normaliser(), capture)
    assert replayed.trades == run.got.trades and replayed.book == run.got.book and replayed.bbo == run.got.bbo


async def test_simulator_protocol_ping_errors_and_tickers() -> None:
    dialect = OkxDialect(DialectOptions(extra={"bbo_channel": "tickers"}))
    sim = dialect.simulator(SimulatorConfig(symbols=SYMBOLS, rate_hz=50))
    await sim.start()
    try:
        async with websockets.connect(dialect.connection_url(sim.ws_url, Subscription(SYMBOLS))) as ws:
            await ws.send("ping")
            assert await ws.recv() == "pong"
            await ws.send('{"op":"subscribe","args":[{"channel":"books","instId":"NOPE-USDT"}]}')
            error = orjson.loads(await ws.recv())
            assert error["event"] == "error" and error["code"] == "60018"
            await ws.send(dialect.subscribe_frames(Subscription(("BTC-USDT",), ("bbo",)))[0])
            n = dialect.new_normaliser()
            out = RecordBuffer()
            while len(out.bbo) < 5:
                n.on_frame(time.time_ns(), await ws.recv(), out)
            assert out.feed_events == [] and {r[8] for r in out.bbo} == {None}
    finally:
        await sim.stop()


async def test_bad_frames_on_the_wire_are_parse_errors_and_data_keeps_flowing() -> None:
    async with running("okx", SYMBOLS) as run:
        await run.until(lambda: run.count("book", "BTC-USDT") > 10)
        run.sim.faults.malformed_frames = 1
        run.sim.faults.invalid_utf8_frames = 1
        await run.until(lambda: len(run.events("parse_error")) == 2)
        before = run.count("book", "ETH-USDT-PERP"), run.count("book", "BTC-USDT")
        await run.until(
            lambda: (
                run.count("book", "ETH-USDT-PERP") > before[0] + 10
                and run.count("book", "BTC-USDT") > before[1] + 10
            )
        )
        assert all(orjson.loads(e[5])["frame"] for e in run.events("parse_error"))
        assert run.events("gap") == [] and run.collector.stats.connects == 1


def test_tick_by_tick_books_need_a_login_and_are_not_offered() -> None:
    from collectors.base import DialectOptions
    from collectors.venues.okx import OkxDialect

    for channel in ("books-l2-tbt", "books50-l2-tbt"):
        with pytest.raises(ValueError, match="needs a logged-in VIP account"):
            OkxDialect(DialectOptions(extra={"book_channel": channel}))
    assert OkxDialect().book_channel == "books"


# -- derivatives channels (issue 15): swaps and futures ------------------------------------------------
# liquidation-orders: the example of OKX's page (stored copy dated 2026-07-19); the others in OKX's
# documented push format ({"arg": {...}, "data": [...]}) with the fields the module docstring lists.
MS = 1_000_000
DOC_LIQUIDATION = {
    "arg": {"channel": "liquidation-orders", "instType": "SWAP"},
    "data": [
        {
            "details": [
                {
                    "bkLoss": "0",
                    "bkPx": "0.007831",
                    "ccy": "",
                    "posSide": "short",
                    "side": "buy",
                    "sz": "13",
                    "ts": "1692266434010",
                }
            ],
            "instFamily": "IOST-USDT",
            "instId": "IOST-USDT-SWAP",
            "instType": "SWAP",
            "uly": "IOST-USDT",
        }
    ],
}
FUNDING = {
    "arg": {"channel": "funding-rate", "instId": "BTC-USD-SWAP"},
    "data": [
        {
            "formulaType": "noRate",
            "fundingRate": "0.0001875391284828",
            "fundingTime": "1700726400000",
            "impactValue": "",
            "instId": "BTC-USD-SWAP",
            "instType": "SWAP",
            "interestRate": "",
            "method": "current_period",
            "maxFundingRate": "0.00375",
            "minFundingRate": "-0.00375",
            "nextFundingRate": "",
            "nextFundingTime": "1700755200000",
            "premium": "0.0001233824646391",
            "settFundingRate": "0.0001699799259033",
            "settState": "settled",
            "ts": "1700724675402",
        }
    ],
}
MARK = {
    "arg": {"channel": "mark-price", "instId": "BTC-USD-SWAP"},
    "data": [{"instType": "SWAP", "instId": "BTC-USD-SWAP", "markPx": "42310.6", "ts": "1700724675500"}],
}
INDEX = {
    "arg": {"channel": "index-tickers", "instId": "BTC-USD"},
    "data": [
        {
            "instId": "BTC-USD",
            "idxPx": "42305.1",
            "high24h": "42500",
            "low24h": "41000",
            "open24h": "41500",
            "sodUtc0": "41600",
            "sodUtc8": "41700",
            "ts": "1700724675450",
        }
    ],
}
OPEN_INTEREST = {
    "arg": {"channel": "open-interest", "instId": "BTC-USD-SWAP"},
    "data": [
        {
            "instId": "BTC-USD-SWAP",
            "instType": "SWAP",
            "oi": "5000",
            "oiCcy": "555.55",
            "oiUsd": "50000",
            "ts": "1700724675600",
        }
    ],
}


def _push(n: OkxNormaliser, *msgs: dict[str, Any], recv: int) -> RecordBuffer:
    out = RecordBuffer()
    for m in msgs:
        n.on_frame(recv, orjson.dumps(m), out)
    return out


def test_funding_mark_index_and_open_interest_rows_equal_the_pushes() -> None:
    n = OkxNormaliser()
    recv = 1700724675700 * MS
    out = _push(n, MARK, FUNDING, INDEX, MARK, OPEN_INTEREST, recv=recv)
    assert out.feed_events == []
    assert out.funding == [
        ("okx", "BTC-USD-PERP", 1700724675402 * MS, recv, 0.0001875391284828, None, 1700726400000 * MS, 0)
    ]
    # the mark before any index push has no index; after it, the latest idxPx of BTC-USD
    assert out.mark_price == [
        ("okx", "BTC-USD-PERP", 1700724675500 * MS, recv, 42310.6, None, 0),
        ("okx", "BTC-USD-PERP", 1700724675500 * MS, recv, 42310.6, 42305.1, 0),
    ]
    assert out.open_interest == [("okx", "BTC-USD-PERP", 1700724675600 * MS, recv, 5000.0, 50000.0, 0)]
    predicted = {**FUNDING, "data": [{**FUNDING["data"][0], "nextFundingRate": "0.00012"}]}
    assert _push(n, predicted, recv=recv).funding[0][5] == 0.00012
    n.on_disconnect(recv, RecordBuffer())  # a new connection waits for a new index push
    assert _push(n, MARK, recv=recv).mark_price[0][5] is None


def test_open_interest_example_of_the_older_page_has_no_value() -> None:
    # the open-interest push example of an older copy of the public websocket page, verbatim: no oiUsd
    doc = {
        "arg": {"channel": "open-interest", "instId": "LTC-USD-SWAP"},
        "data": [
            {
                "instType": "SWAP",
                "instId": "LTC-USD-SWAP",
                "oi": "5000",
                "oiCcy": "555.55",
                "ts": "1597026383085",
            }
        ],
    }
    recv = 1597026383100 * MS
    out = _push(OkxNormaliser(), doc, recv=recv)
    assert out.feed_events == []
    assert out.open_interest == [("okx", "LTC-USD-PERP", 1597026383085 * MS, recv, 5000.0, None, 0)]


def test_documented_liquidation_order_is_one_row_with_the_orders_side() -> None:
    recv = 1692266434010 * MS + 20 * MS
    out = _push(OkxNormaliser(), DOC_LIQUIDATION, recv=recv)
    # posSide short is closed by a buy: the liquidation order's (taker) side; bkPx; sz in contracts
    assert out.liquidations == [
        ("okx", "IOST-USDT-PERP", 1692266434010 * MS, recv, None, "buy", 0.007831, 13.0, 0)
    ]


def test_liquidations_of_instruments_outside_the_connection_are_skipped() -> None:
    n = OkxNormaliser()
    ack = {"event": "subscribe", "arg": {"channel": "mark-price", "instId": "BTC-USDT-SWAP"}, "connId": "a"}
    btc = {
        **DOC_LIQUIDATION["data"][0],
        "instId": "BTC-USDT-SWAP",
        "instFamily": "BTC-USDT",
        "uly": "BTC-USDT",
    }
    both = {**DOC_LIQUIDATION, "data": [DOC_LIQUIDATION["data"][0], btc]}
    out = _push(n, ack, both, recv=1692266434030 * MS)
    assert [r[1] for r in out.liquidations] == ["BTC-USDT-PERP"]
    assert n.liquidations_elsewhere == 1


def test_derivatives_subscriptions_only_for_swaps_and_futures() -> None:
    d = get_dialect("okx")
    assert d.demo_symbols == ("BTC-USDT-SWAP", "ETH-USDT-SWAP")
    sub = Subscription(
        ("BTC-USDT", "BTC-USD-SWAP", "BTC-USD-250926"), ("funding", "mark", "open_interest", "liquidations")
    )
    assert d.subscription_args(sub) == [
        {"channel": "funding-rate", "instId": "BTC-USD-SWAP"},
        {"channel": "index-tickers", "instId": "BTC-USD"},
        {"channel": "mark-price", "instId": "BTC-USD-SWAP"},
        {"channel": "open-interest", "instId": "BTC-USD-SWAP"},
        {"channel": "mark-price", "instId": "BTC-USD-250926"},  # one index for both
        {"channel": "open-interest", "instId": "BTC-USD-250926"},
        {"channel": "liquidation-orders", "instType": "SWAP"},
        {"channel": "liquidation-orders", "instType": "FUTURES"},
    ]


@pytest.mark.parametrize(
    "msg",
    [
        {**FUNDING, "data": [{**FUNDING["data"][0], "fundingRate": "NaN"}]},
        {**MARK, "data": [{**MARK["data"][0], "markPx": "-1"}]},
        {**MARK, "arg": {"channel": "mark-price", "instId": "../x"}},
        {**INDEX, "data": [{**INDEX["data"][0], "idxPx": "0"}]},
        {**OPEN_INTEREST, "data": [{**OPEN_INTEREST["data"][0], "oi": "x"}]},
        {
            **DOC_LIQUIDATION,
            "data": [
                {
                    **DOC_LIQUIDATION["data"][0],
                    "details": [{**DOC_LIQUIDATION["data"][0]["details"][0], "side": "long"}],
                }
            ],
        },
        {**DOC_LIQUIDATION, "data": [{**DOC_LIQUIDATION["data"][0], "details": "x"}]},
    ],
)
def test_bad_derivatives_pushes_are_parse_errors_without_rows(msg: dict[str, Any]) -> None:
    out = _push(OkxNormaliser(), msg, recv=1700724675700 * MS)
    assert [e[4] for e in out.feed_events] == ["parse_error"]
    assert not (out.funding or out.mark_price or out.open_interest or out.liquidations)


async def test_simulator_serves_the_derivatives_channels_of_swaps() -> None:
    async with running("okx", ("BTC-USDT-SWAP", "ETH-USDT-SWAP")) as run:
        await run.until(
            lambda: (
                all(
                    run.count(ds, s) > 0
                    for ds in ("funding", "mark_price", "open_interest", "liquidations")
                    for s in ("BTC-USDT-PERP", "ETH-USDT-PERP")
                )
                and all(r[5] is not None for r in run.got.mark_price[-2:])
            )
        )
    assert not {e[4] for e in run.got.feed_events} & {"parse_error", "exchange_error", "gap"}
    assert {r[5] for r in run.got.liquidations} <= {"buy", "sell"}
    for row in run.got.funding:
        assert row[6] is not None and row[6] % (8 * 3600 * 1000 * MS) == 0
