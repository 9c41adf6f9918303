"""HTX spot (``htx``) and USDT-margined swaps (``htx-swap``): the real recordings, documented message
examples for what the recordings lack (the ``mbp`` sequence rule, the ``high_freq`` version rule, bbo),
gzip frames, ping/pong, and both simulators end to end through the shared connection lifecycle.

What differs between the recordings (../shared/samples/htx, 2021; ../shared/samples/htx-swap, 2022)
and the current documentation: the recordings subscribed ``market.$symbol.depth.step0`` (a whole book
per message, every ~100 ms-1 s) where the live collector now uses the incremental ``mbp.150`` (spot,
on ``/feed``, with a ``req`` snapshot) and ``depth.size_150.high_freq`` (swaps); they hold no ``bbo``
(so there is no top-of-book stream to compare the book with: each rebuilt book is compared with the
whole book of its message instead, which is stronger). Trade messages are unchanged; spot items carry
both ``id`` (to be obsoleted, a >64-bit number) and ``tradeId`` (used). The swap file without ``_2`` was
recorded on the coin-margined ``swap-ws`` (``ATOM-USD``); its messages have the same shape.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
import websockets

from collectors.base import DEFAULT_MAX_FRAME_BYTES, Subscription
from collectors.book import L2Book
from collectors.capture import CaptureWriter, read_capture, replay_capture
from collectors.connection import split_subscription
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues.htx.common import decode_frame, gunzip_bounded
from collectors.venues.htx.simulator import HtxSpotSimulator, gzip_text
from collectors.venues.htx.spot import REQ_AGAIN_AFTER, HtxSpotNormaliser
from collectors.venues.htx.swap import HtxSwapNormaliser
from schemas import RecordBuffer
from tests.collectors.bad_input import assert_parse_error_then_flowing
from tests.collectors.book_replay import assert_tops_match_bbo
from tests.collectors.test_connection import running

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "samples"
SPOT_FILE = SAMPLES / "htx" / "htx_cryptofeed.capture.gz"
SWAP_FILE = SAMPLES / "htx-swap" / "htx-swap_cryptofeed_2.capture.gz"  # linear-swap-ws
COIN_SWAP_FILE = SAMPLES / "htx-swap" / "htx-swap_cryptofeed.capture.gz"  # swap-ws (coin-margined)
MS = 1_000_000


def frames_of(path: Path) -> list[tuple[int, dict[str, Any]]]:
    return [(item[0], orjson.loads(item[1])) for item in read_capture(path) if isinstance(item, tuple)]


def _normalise(exchange: str, native: str) -> str:
    return get_dialect(exchange).new_normaliser().symbol_books.name(native)


# -- the recordings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "path", "id_field", "trades"),
    [
        ("htx", SPOT_FILE, "tradeId", 73),
        ("htx-swap", SWAP_FILE, "id", 17),
        ("htx-swap", COIN_SWAP_FILE, "id", 8),
    ],
)
def test_recording_trades_equal_the_messages(exchange: str, path: Path, id_field: str, trades: int) -> None:
    out = replay_capture(get_dialect(exchange).new_normaliser(), path)
    expected = []
    for ts_recv, msg in frames_of(path):
        ch = msg.get("ch", "")
        if not ch.endswith(".trade.detail"):
            continue
        symbol = _normalise(exchange, ch.split(".")[1])
        for t in msg["tick"]["data"]:
            expected.append(
                (
                    symbol,
                    t["ts"] * MS,
                    ts_recv,
                    str(t[id_field]),
                    float(t["price"]),
                    float(t["amount"]),
                    t["direction"],
                )
            )
    assert [r[1:8] for r in out.trades] == expected
    assert len(expected) == trades
    assert out.feed_events == []  # no gap, no resync, no parse error, no duplicate


def test_recording_spot_trade_id_is_trade_id_not_the_obsolete_id() -> None:
    out = replay_capture(get_dialect("htx").new_normaliser(), SPOT_FILE)
    # first recorded trade: {"id":100182534526255757567432481,"tradeId":100045088885,...}
    assert out.trades[0][1:8] == (
        "TRIO-ETH",
        1618678027940 * MS,
        1618678070909736960,
        "100045088885",
        9.2e-07,
        20995.88,
        "buy",
    )


@pytest.mark.parametrize(
    ("exchange", "path", "messages"),
    [("htx", SPOT_FILE, 292), ("htx-swap", SWAP_FILE, 1588), ("htx-swap", COIN_SWAP_FILE, 1274)],
)
def test_recording_full_books_rebuild_exactly_each_message(exchange: str, path: Path, messages: int) -> None:
    """Each ``depth.step0`` message is a whole book: the book rebuilt from the emitted rows equals it
    after every message, the first is the only snapshot per symbol, and no gap or resync is reported."""
    normaliser = get_dialect(exchange).new_normaliser()
    books: dict[str, L2Book] = {}
    compared = 0
    snapshots: dict[str, int] = {}
    for ts_recv, msg in frames_of(path):
        out = RecordBuffer()
        normaliser.on_frame(ts_recv, orjson.dumps(msg), out)
        assert out.feed_events == []
        ch = msg.get("ch", "")
        if ".depth.step" not in ch:
            assert out.book == []
            continue
        symbol = _normalise(exchange, ch.split(".")[1])
        book = books.setdefault(symbol, L2Book())
        if out.book and out.book[0][7]:
            book.clear()
            snapshots[symbol] = snapshots.get(symbol, 0) + 1
        for row in out.book:
            assert (
                row[1] == symbol and row[2] == msg["tick"]["ts"] * MS and row[8] == msg["tick"].get("version")
            )
            assert row[9] == 0  # one epoch: nothing was a resync
            book.set_level(row[4], row[5], row[6])
        for side, levels in (("bid", msg["tick"]["bids"]), ("ask", msg["tick"]["asks"])):
            want = [(float(p), float(s)) for p, s in levels if s]
            got = [(p, v[0]) for p, v in book.side(side).items()]
            assert got == want, (symbol, side)
        compared += 1
    assert compared == messages
    assert set(snapshots.values()) == {1}


# -- gzip frames -------------------------------------------------------------------------------------


def test_gzip_frames_are_inflated_and_text_passes_unchanged() -> None:
    text = b'{"ping":1492420473027}'
    assert decode_frame(gzip.compress(text)) == text
    assert decode_frame(text) == text
    assert get_dialect("htx").decode_binary(gzip.compress(text)) == text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # mtime=0: the same bytes (and test ids) in every xdist worker
        (gzip.compress(b"\0" * (DEFAULT_MAX_FRAME_BYTES + 1), mtime=0), "inflates beyond"),  # a bomb
        (gzip.compress(b'{"ping":1}', mtime=0)[:-6], "truncated gzip"),
        (b"\x1f\x8b" + b"\xff" * 20, "corrupt gzip"),
    ],
    ids=["bomb", "truncated", "corrupt"],
)
def test_undecodable_gzip_is_a_parse_error_live_and_on_replay(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    assert len(raw) < 64 * 1024
    with pytest.raises(Exception, match=reason):
        gunzip_bounded(raw)
    captured = decode_frame(raw)
    assert captured == b"b64:" + base64.b64encode(raw)  # kept, bounded, in the capture's line format
    good = gzip_text(
        '{"ch":"market.btcusdt.trade.detail","ts":2,"tick":{"id":1,"ts":2,"data":'
        '[{"id":1,"ts":2,"tradeId":7,"amount":1.5,"price":10.0,"direction":"sell"}]}}'
    )
    live = RecordBuffer()
    normaliser = get_dialect("htx").new_normaliser()
    normaliser.on_frame(1, captured, live)
    normaliser.on_frame(2, decode_frame(good), live)
    assert [e[4] for e in live.feed_events] == ["parse_error"]
    assert reason in orjson.loads(live.feed_events[0][5])["reason"]
    assert [r[4] for r in live.trades] == ["7"]
    path = tmp_path / "bad.capture.gz"
    with CaptureWriter(path) as writer:
        writer.write_frame(1, captured)
        writer.write_frame(2, decode_frame(good))
    replayed = replay_capture(get_dialect("htx").new_normaliser(), path)
    assert replayed.feed_events == live.feed_events and replayed.trades == live.trades


# -- documented messages -----------------------------------------------------------------------------

DOC_PING = b'{"ping": 1492420473027}'


@pytest.mark.parametrize("exchange", ["htx", "htx-swap"])
def test_ping_is_answered_with_the_same_integer(exchange: str) -> None:
    normaliser = get_dialect(exchange).new_normaliser()
    out = RecordBuffer()
    normaliser.on_frame(1, DOC_PING, out)
    assert list(normaliser.replies) == ['{"pong":1492420473027}']
    assert len(out) == 0


def test_documented_spot_bbo() -> None:
    msg = {
        "ch": "market.btcusdt.bbo",
        "ts": 1630994555540,
        "tick": {
            "seqId": 137005210233,
            "ask": 52665.02,
            "askSize": 1.502181,
            "bid": 52665.01,
            "bidSize": 0.178567,
            "quoteTime": 1630994555539,
            "symbol": "btcusdt",
        },
    }
    out = RecordBuffer()
    get_dialect("htx").new_normaliser().on_frame(1630994555600 * MS, orjson.dumps(msg), out)
    assert [r[:9] for r in out.bbo] == [
        (
            "htx",
            "BTC-USDT",
            1630994555539 * MS,
            1630994555600 * MS,
            52665.01,
            0.178567,
            52665.02,
            1.502181,
            137005210233,
        )
    ]


def test_documented_swap_bbo_and_trade() -> None:
    bbo = {
        "ch": "market.BTC-USDT.bbo",
        "ts": 1603707934525,
        "tick": {
            "mrid": 131599726,
            "id": 1603707934,
            "bid": [13064, 38],
            "ask": [13072.3, 205],
            "ts": 1603707934525,
            "version": 131599726,
            "ch": "market.BTC-USDT.bbo",
        },
    }
    trade = {
        "ch": "market.BTC-USDT.trade.detail",
        "ts": 1603708208346,
        "tick": {
            "id": 131602265,
            "ts": 1603708208335,
            "data": [
                {
                    "amount": 2,
                    "ts": 1603708208335,
                    "id": 1316022650000,
                    "price": 13073.3,
                    "direction": "buy",
                    "quantity": 0.002,
                    "trade_turnover": 26.334,
                }
            ],
        },
    }
    out = RecordBuffer()
    normaliser = get_dialect("htx-swap").new_normaliser()
    normaliser.on_frame(1, orjson.dumps(bbo), out)
    normaliser.on_frame(2, orjson.dumps(trade), out)
    assert [r[1:9] for r in out.bbo] == [
        ("BTC-USDT-PERP", 1603707934525 * MS, 1, 13064.0, 38.0, 13072.3, 205.0, 131599726)
    ]
    assert [r[1:8] for r in out.trades] == [
        ("BTC-USDT-PERP", 1603708208335 * MS, 2, "1316022650000", 13073.3, 2.0, "buy")
    ]
    # the same trade again (HTX re-sends the latest trade on subscribe): a duplicate, not a row
    normaliser.on_frame(3, orjson.dumps(trade), out)
    assert len(out.trades) == 1 and [e[4] for e in out.feed_events] == ["duplicate"]


def mbp(seq: int, prev: int, bids: list[Any] | None = None, asks: list[Any] | None = None) -> bytes:
    """An incremental message in the documented shape (market.btcusdt.mbp.150)."""
    tick: dict[str, Any] = {"seqNum": seq, "prevSeqNum": prev}
    if bids is not None:
        tick["bids"] = bids
    if asks is not None:
        tick["asks"] = asks
    return orjson.dumps({"ch": "market.btcusdt.mbp.150", "ts": 1573199608679, "tick": tick})


def rep(seq: int, bids: list[Any], asks: list[Any], status: str = "ok") -> bytes:
    """The documented ``req`` answer (Sample A): ``{"id","rep","status","data":{"seqNum","bids","asks"}}``."""
    return orjson.dumps(
        {
            "id": "mbp:btcusdt",
            "rep": "market.btcusdt.mbp.150",
            "status": status,
            "data": {"seqNum": seq, "bids": bids, "asks": asks},
        }
    )


def kinds(out: RecordBuffer) -> list[str]:
    return [e[4] for e in out.feed_events]


def test_mbp_buffers_until_the_req_snapshot_then_aligns_on_prev_seq_num() -> None:
    """Documented procedure: buffer the incremental messages, ``req`` the refresh, align it with the
    buffered message whose ``prevSeqNum`` equals its ``seqNum``, then chain ``prevSeqNum``."""
    normaliser = HtxSpotNormaliser()
    dialect = get_dialect("htx")
    out = RecordBuffer()
    normaliser.on_frame(1, mbp(100020146794, 100020146793, bids=[[618.0, 1.0]]), out)
    assert normaliser.resubscribe_requests == {"btcusdt"}  # the req, asked once
    assert dialect.resubscribe_frames(["btcusdt"], Subscription(("btcusdt",), ("book",))) == [
        '{"req":"market.btcusdt.mbp.150","id":"mbp:btcusdt"}'
    ]
    normaliser.resubscribe_requests.clear()
    # the documented update example: seqNum 100020146795, prevSeqNum 100020146794, one ask
    normaliser.on_frame(2, mbp(100020146795, 100020146794, asks=[[645.14, 26.75597395914065]]), out)
    normaliser.on_frame(3, mbp(100020146796, 100020146795, bids=[], asks=[]), out)  # nothing changed
    assert out.book == [] and normaliser.resubscribe_requests == set()
    normaliser.on_frame(
        4, rep(100020146794, [[618.37, 71.594], [423.33, 77.726]], [[650.59, 14.9], [651.0, 2.0]]), out
    )
    book = normaliser.books["btcusdt"]
    assert book.synced and book.last_seq == 100020146796
    assert [(r[4], r[5], r[6], r[7], r[8]) for r in out.book] == [
        ("bid", 618.37, 71.594, True, 100020146794),
        ("bid", 423.33, 77.726, True, 100020146794),
        ("ask", 650.59, 14.9, True, 100020146794),
        ("ask", 651.0, 2.0, True, 100020146794),
        ("ask", 645.14, 26.75597395914065, False, 100020146795),  # the 794 update is in the snapshot
    ]
    assert book.book.best_ask() == (645.14, 26.75597395914065)
    assert kinds(out) == []
    # a repeat, and a message going backwards: duplicates, ignored
    normaliser.on_frame(5, mbp(100020146796, 100020146795, bids=[[1.0, 1.0]]), out)
    normaliser.on_frame(6, mbp(100020146700, 100020146699, bids=[[1.0, 1.0]]), out)
    assert kinds(out) == ["duplicate", "duplicate"] and book.book.best_bid() == (618.37, 71.594)


def test_mbp_prev_seq_num_mismatch_is_a_gap_of_that_symbol_then_a_resync() -> None:
    normaliser = HtxSpotNormaliser()
    out = RecordBuffer()
    for native in ("btcusdt", "ethusdt"):
        frame = mbp(10, 9, bids=[[1.0, 1.0]]).replace(b"btcusdt", native.encode())
        normaliser.on_frame(1, frame, out)
        normaliser.on_frame(2, rep(9, [[1.0, 2.0]], [[3.0, 1.0]]).replace(b"btcusdt", native.encode()), out)
    normaliser.resubscribe_requests.clear()
    normaliser.on_frame(3, mbp(12, 11, asks=[[3.0, 5.0]]), out)  # 11 was lost
    assert kinds(out) == ["gap"] and out.feed_events[0][1] == "BTC-USDT"
    assert normaliser.resubscribe_requests == {"btcusdt"}
    assert not normaliser.books["btcusdt"].synced and normaliser.books["ethusdt"].synced
    normaliser.on_frame(4, mbp(13, 12, bids=[[1.5, 1.0]]), out)
    normaliser.on_frame(5, rep(12, [[1.0, 4.0]], [[3.0, 5.0]]), out)
    assert kinds(out) == ["gap", "resync"]
    book = normaliser.books["btcusdt"]
    assert book.epoch == 1 and book.last_seq == 13 and book.book.best_bid() == (1.5, 1.0)


def test_mbp_snapshot_older_than_the_buffer_is_asked_again() -> None:
    normaliser = HtxSpotNormaliser()
    out = RecordBuffer()
    normaliser.on_frame(1, mbp(20, 19, bids=[[1.0, 1.0]]), out)
    normaliser.resubscribe_requests.clear()
    normaliser.on_frame(2, rep(15, [[1.0, 2.0]], [[3.0, 1.0]]), out)  # 16..19 missing between them
    assert kinds(out) == ["snapshot_unaligned"] and normaliser.resubscribe_requests == {"btcusdt"}
    assert out.book == [] and not normaliser.books["btcusdt"].synced
    normaliser.on_frame(3, rep(19, [[1.0, 2.0]], [[3.0, 1.0]]), out)
    assert normaliser.books["btcusdt"].synced and normaliser.books["btcusdt"].last_seq == 20


def test_mbp_req_error_is_recorded_and_asked_again() -> None:
    normaliser = HtxSpotNormaliser()
    out = RecordBuffer()
    normaliser.on_frame(1, mbp(20, 19), out)
    normaliser.resubscribe_requests.clear()
    error = {
        "id": "mbp:btcusdt",
        "status": "error",
        "err-code": "bad-request",
        "err-msg": "429 too many request",
        "ts": 1,
    }
    normaliser.on_frame(2, orjson.dumps(error), out)
    assert kinds(out) == ["snapshot_error"] and out.feed_events[0][1] == "BTC-USDT"
    normaliser.on_frame(3, mbp(21, 20), out)
    assert normaliser.resubscribe_requests == {"btcusdt"}
    normaliser.resubscribe_requests.clear()
    for i in range(REQ_AGAIN_AFTER):  # the answer never comes: asked again after REQ_AGAIN_AFTER messages
        normaliser.on_frame(4 + i, mbp(22 + i, 21 + i), out)
    assert normaliser.resubscribe_requests == {"btcusdt"} and kinds(out)[-1] == "resync_retry"


def hf(event: str, version: int, bids: list[Any], asks: list[Any]) -> bytes:
    """A ``depth.size_20.high_freq`` message in the documented shape."""
    ch = "market.BTC-USDT.depth.size_20.high_freq"
    tick = {
        "asks": asks,
        "bids": bids,
        "ch": ch,
        "event": event,
        "id": 131597620,
        "mrid": 131597620,
        "ts": 1603707712356,
        "version": version,
    }
    return orjson.dumps({"ch": ch, "tick": tick, "ts": 1603707712357})


def test_high_freq_snapshot_then_version_plus_one_gap_resubscribes() -> None:
    normaliser = HtxSwapNormaliser()
    dialect = get_dialect("htx-swap")
    out = RecordBuffer()
    normaliser.on_frame(1, hf("update", 1512466, [[13071.0, 1]], []), out)  # before any snapshot: dropped
    assert out.book == [] and normaliser.resubscribe_requests == {"BTC-USDT"}
    normaliser.resubscribe_requests.clear()
    # the documented snapshot example
    normaliser.on_frame(
        2, hf("snapshot", 1512467, [[13071.9, 38], [13060, 400]], [[13081.9, 206], [13099.7, 371]]), out
    )
    normaliser.on_frame(3, hf("update", 1512468, [[13071.9, 0]], [[13081.9, 200]]), out)
    book = normaliser.books["BTC-USDT"]
    assert book.book.best_bid() == (13060.0, 400.0) and book.book.best_ask() == (13081.9, 200.0)
    assert {r[8] for r in out.book} == {1512467, 1512468} and out.book[0][2] == 1603707712356 * MS
    normaliser.on_frame(4, hf("update", 1512468, [[1.0, 1]], []), out)  # repeat
    assert kinds(out) == ["duplicate"]
    normaliser.on_frame(5, hf("update", 1512470, [[13070.0, 5]], []), out)  # 1512469 lost
    assert kinds(out) == ["duplicate", "gap"] and normaliser.resubscribe_requests == {"BTC-USDT"}
    frames = dialect.resubscribe_frames(["BTC-USDT"], Subscription(("BTC-USDT",), ("book",)))
    assert [orjson.loads(f) for f in frames] == [
        {"unsub": "market.BTC-USDT.depth.size_150.high_freq", "data_type": "incremental", "id": "unsub-1"},
        {"sub": "market.BTC-USDT.depth.size_150.high_freq", "data_type": "incremental", "id": "sub-2"},
    ]
    normaliser.on_frame(6, hf("snapshot", 1512480, [[13070.0, 5]], [[13081.9, 200]]), out)
    assert kinds(out) == ["duplicate", "gap", "resync"] and book.epoch == 1 and book.synced


@pytest.mark.parametrize("exchange", ["htx", "htx-swap"])
@pytest.mark.parametrize(
    "bad",
    [
        b'{"ch": "market.btcusdt.trade.detail", "tick": {',
        b'{"ch":"market.../etc.trade.detail","ts":1,"tick":{"data":[]}}',
        b'{"ch":"market.BTC-USDT.trade.detail","ts":1,"tick":{"data":[{"id":1,"tradeId":1,"ts":1,"price":NaN,"amount":1,"direction":"buy"}]}}',
        b'{"ch":"market.btcusdt.trade.detail","ts":1,"tick":{"data":[{"id":1,"tradeId":1,"ts":1,"price":-1,"amount":1,"direction":"buy"}]}}',
        b'{"ping":"soon"}',
        b"[1,2,3]",
        b"b64:!!!!",
        b"\xff\xfe",
    ],
)
def test_bad_input_is_a_parse_error_and_others_keep_flowing(exchange: str, bad: bytes) -> None:
    native = "btcusdt" if exchange == "htx" else "BTC-USDT"
    good = orjson.dumps(
        {
            "ch": f"market.{native}.trade.detail",
            "ts": 2,
            "tick": {
                "id": 1,
                "ts": 2,
                "data": [{"id": 5, "tradeId": 5, "ts": 2, "price": 1.5, "amount": 2, "direction": "sell"}],
            },
        }
    )
    assert_parse_error_then_flowing(get_dialect(exchange).new_normaliser(), bad, good, ["5"])


def test_symbols_endpoints_and_connection_split() -> None:
    spot = get_dialect("htx")
    assert spot.native_symbol("BTC-USDT") == "btcusdt" and spot.normalise_symbol("fil3susdt") == "FIL3S-USDT"
    assert spot.normalise_symbol("yfihusd") == "YFI-HUSD"
    subs = split_subscription(spot, ["btcusdt", "ethusdt"], ("trades", "book", "bbo"))
    assert [s.channels for s in subs] == [("trades", "bbo"), ("book",)]
    assert [spot.connection_url("wss://api.huobi.pro", s) for s in subs] == [
        "wss://api.huobi.pro/ws",
        "wss://api.huobi.pro/feed",
    ]
    assert spot.subscribe_frames(subs[1]) == [
        '{"sub":"market.btcusdt.mbp.150","id":"sub-1"}',
        '{"sub":"market.ethusdt.mbp.150","id":"sub-2"}',
    ]
    swap = get_dialect("htx-swap")
    assert (
        swap.native_symbol("BTC-USDT-PERP") == "BTC-USDT"
        and swap.normalise_symbol("BTC-USDT") == "BTC-USDT-PERP"
    )
    assert swap.normalise_symbol("BTC-USDT-CW") == "BTC-USDT-CW"
    assert (
        swap.connection_url("wss://api.hbdm.com", Subscription(("BTC-USDT",)))
        == "wss://api.hbdm.com/linear-swap-ws"
    )
    assert len(split_subscription(swap, ["BTC-USDT"], ("trades", "book", "bbo"))) == 1
    # the mark price is served on /ws_index, funding and liquidations on /linear-swap-notification: their
    # own connections; open interest (polled) rides the market connection
    subs = split_subscription(swap, ["BTC-USDT"], swap.channels)
    assert [s.channels for s in subs] == [
        ("trades", "book", "bbo", "open_interest"),
        ("mark",),
        ("funding", "liquidations"),
    ]
    assert [orjson.loads(f)["sub"] for f in swap.subscribe_frames(subs[0])] == [
        "market.BTC-USDT.trade.detail",
        "market.BTC-USDT.depth.size_150.high_freq",
        "market.BTC-USDT.bbo",
    ]
    assert swap.rest_polls(subs[0]) == [("open_interest", "BTC-USDT")]
    assert swap.rest_polls(subs[1]) == [] and swap.rest_polls(subs[2]) == []
    assert swap.connection_url("wss://api.hbdm.com/linear-swap-ws", subs[1]) == "wss://api.hbdm.com/ws_index"
    assert [orjson.loads(f)["sub"] for f in swap.subscribe_frames(subs[1])] == [
        "market.BTC-USDT.mark_price.1min"
    ]
    assert (
        swap.connection_url("wss://api.hbdm.com/ws_index", subs[2])
        == "wss://api.hbdm.com/linear-swap-notification"
    )
    funding_sub, liquidation_sub = [orjson.loads(f) for f in swap.subscribe_frames(subs[2])]
    assert funding_sub["op"] == "sub" and funding_sub["topic"] == "public.BTC-USDT.funding_rate"
    assert liquidation_sub["op"] == "sub" and liquidation_sub["topic"] == "public.BTC-USDT.liquidation_orders"
    liquidations_only = Subscription(("BTC-USDT",), ("liquidations",))
    assert (
        swap.connection_url("wss://api.hbdm.com", liquidations_only)
        == "wss://api.hbdm.com/linear-swap-notification"
    )


def test_swap_funding_rate_examples_and_the_op_protocol() -> None:
    # "[General] Subscribe funding rate (no authentication)" (checked 2026-12-05): its data update
    # example (estimated_rate deprecated, sent as the string "null"), then an older push that still
    # carried an estimated rate (a public client's recorded linear-swap message, 2021)
    documented = (
        b'{"op":"notify","topic":"public.BTC-USDT.funding_rate","ts":1603778748166,"data":[{"symbol":"BTC",'
        b'"contract_code":"BTC-USDT","fee_asset":"USDT","funding_time":"1603778700000",'
        b'"funding_rate":"-0.000220068774978695","settlement_time":"1603785600000","estimated_rate":"null"}]}'
    )
    older = (
        b'{"op":"notify","topic":"public.BTC-USDT.funding_rate","ts":1617309787271,"data":[{"symbol":"BTC",'
        b'"contract_code":"BTC-USDT","fee_asset":"USDT","funding_time":"1617309780000",'
        b'"funding_rate":"0.000754108135233895","estimated_rate":"0.000429934303518805",'
        b'"settlement_time":"1617321600000"}]}'
    )
    normaliser = HtxSwapNormaliser()
    out = RecordBuffer()
    normaliser.on_frame(1603778748200000000, documented, out)
    normaliser.on_frame(1617309787300000000, older, out)
    assert [r[:7] for r in out.funding] == [
        (
            "htx-swap",
            "BTC-USDT-PERP",
            1603778748166000000,
            1603778748200000000,
            -0.000220068774978695,
            None,
            1603785600000000000,
        ),
        (
            "htx-swap",
            "BTC-USDT-PERP",
            1617309787271000000,
            1617309787300000000,
            0.000754108135233895,
            0.000429934303518805,
            1617321600000000000,
        ),
    ]
    # the op protocol: ping answered with the same ts, a sub answer is quiet, a refused one is an event
    normaliser.on_frame(1, b'{"op":"ping","ts":"1492420473058"}', out)
    assert normaliser.replies[-1] == '{"op":"pong","ts":"1492420473058"}'
    ok = b'{"op":"sub","cid":"40sG903yz80oDFWr","topic":"public.btc-usdt.funding_rate","ts":1670903745088,"err-code":0}'
    normaliser.on_frame(2, ok, out)
    assert out.feed_events == []
    refused = ok.replace(b'"err-code":0', b'"err-code":2011,"err-msg":"invalid topic"')
    normaliser.on_frame(3, refused, out)
    assert [e[4] for e in out.feed_events] == ["subscribe_error"]
    # bad pushes: parse errors, no row
    for bad in (
        documented.replace(b'"-0.000220068774978695"', b'"abc"'),
        documented.replace(b'"contract_code":"BTC-USDT"', b'"contract_code":"ETH-USDT"'),
        documented.replace(b"public.BTC-USDT.funding_rate", b"public.../x.funding_rate"),
        documented.replace(b'"data":[', b'"data":[1,'),
    ):
        normaliser.on_frame(4, bad, out)
    assert [e[4] for e in out.feed_events][1:] == ["parse_error"] * 4 and len(out.funding) == 2


def test_swap_mark_price_kline_example_of_the_documentation() -> None:
    # "[General] Subscribe Kline Data of Mark Price" (checked 2026-12-05): the data update example
    example = (
        b'{"ch":"market.BTC-USDT.mark_price.1min","ts":1489474082831,"tick":{"vol":"0","close":"9800.12",'
        b'"count":"0","high":"9800.12","id":1529898780,"low":"9800.12","open":"9800.12",'
        b'"trade_turnover":"0","amount":"0"}}'
    )
    # the same kline later in its minute: the mark moved (close differs from open, high and low)
    later = example.replace(b'"close":"9800.12"', b'"close":"9801.5"').replace(
        b"1489474082831", b"1489474112831"
    )
    normaliser = HtxSwapNormaliser()
    out = RecordBuffer()
    normaliser.on_frame(1489474082900000000, example, out)
    normaliser.on_frame(1489474112900000000, later, out)
    assert [r[:6] for r in out.mark_price] == [
        ("htx-swap", "BTC-USDT-PERP", 1489474082831000000, 1489474082900000000, 9800.12, None),
        ("htx-swap", "BTC-USDT-PERP", 1489474112831000000, 1489474112900000000, 9801.5, None),
    ]
    assert out.feed_events == []
    bad = example.replace(b'"close":"9800.12"', b'"close":"-1"')
    normaliser.on_frame(1489474113000000000, bad, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"] and len(out.mark_price) == 2


#: "[General] Subscribe Liquidation Orders (no authentication) (sub)", its data update example verbatim:
#: https://www.htx.com/en-us/opend/newApiPages/?id=8cb7e25d-77b5-11ed-9966-0242ac110003 (checked 2026-12-05)
LIQUIDATION_EXAMPLE = (
    b'{"op":"notify","topic":"public.O3-USDT.liquidation_orders","ts":1639122193214,"data":[{"symbol":"O3",'
    b'"contract_code":"O3-USDT","direction":"sell","offset":"close","volume":432,"price":0.7858,'
    b'"created_at":1639122193172,"amount":432,"trade_turnover":339.4656,"contract_type":"swap",'
    b'"pair":"O3-USDT","business_type":"swap"}]}'
)


def test_swap_liquidation_orders_example_of_the_documentation() -> None:
    normaliser = HtxSwapNormaliser()
    out = RecordBuffer()
    normaliser.on_frame(1639122193300000000, LIQUIDATION_EXAMPLE, out)
    # side = direction (the liquidation order's), price = bankruptcy price, size = volume (contracts),
    # time = created_at; no id
    assert out.liquidations == [
        ("htx-swap", "O3-USDT-PERP", 1639122193172000000, 1639122193300000000, None, "sell", 0.7858, 432.0, 0)
    ]
    assert out.feed_events == []
    # two orders in one push (a buy closing a short), both kept in order
    buy = LIQUIDATION_EXAMPLE.replace(
        b'"data":[{',
        b'"data":[{"symbol":"O3","contract_code":"O3-USDT",'
        b'"direction":"buy","offset":"close","volume":7,"price":0.8,"created_at":1639122193180},{',
    )
    normaliser.on_frame(1639122193400000000, buy, out)
    assert [r[5:8] for r in out.liquidations[1:]] == [("buy", 0.8, 7.0), ("sell", 0.7858, 432.0)]
    # hostile variants: counted, never raised, and no row of a half-parsed push
    for bad in (
        LIQUIDATION_EXAMPLE.replace(b'"direction":"sell"', b'"direction":"long"'),
        LIQUIDATION_EXAMPLE.replace(b'"volume":432', b'"volume":0'),
        LIQUIDATION_EXAMPLE.replace(b'"price":0.7858', b'"price":"NaN"'),
        LIQUIDATION_EXAMPLE.replace(b'"created_at":1639122193172', b'"created_at":"soon"'),
        LIQUIDATION_EXAMPLE.replace(b'"contract_code":"O3-USDT"', b'"contract_code":"BTC-USDT"'),
        LIQUIDATION_EXAMPLE.replace(b"public.O3-USDT.liquidation_orders", b"public.../x.liquidation_orders"),
        LIQUIDATION_EXAMPLE.replace(b'"data":[{', b'"data":[1,{'),
        LIQUIDATION_EXAMPLE.replace(b'"data":[{', b'"data":[{"contract_code":"O3-USDT","direction":"buy"},{'),
    ):
        normaliser.on_frame(1639122193500000000, bad, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"] * 8 and len(out.liquidations) == 3


#: "[General] Get Swap Open Interest Information", its success example verbatim (one swap, three futures):
#: https://www.htx.com/en-us/opend/newApiPages/?id=8cb80166-77b5-11ed-9966-0242ac110003 (checked 2026-12-05)
OPEN_INTEREST_EXAMPLE = (
    b'{"status":"ok","data":[{"volume":78696,"amount":78.696,"symbol":"BTC","value":3823138.2456,'
    b'"contract_code":"BTC-USDT","trade_amount":0,"trade_volume":0,"trade_turnover":0,"business_type":"swap",'
    b'"pair":"BTC-USDT","contract_type":"swap"},{"volume":10925,"amount":10.925,"symbol":"BTC",'
    b'"value":530662.21,"contract_code":"BTC-USDT-211217","trade_amount":0,"trade_volume":0,"trade_turnover":0,'
    b'"business_type":"futures","pair":"BTC-USDT","contract_type":"next_week"},{"volume":27104,"amount":27.104,'
    b'"symbol":"BTC","value":1316937.2832,"contract_code":"BTC-USDT-211210","trade_amount":0,"trade_volume":0,'
    b'"trade_turnover":0,"business_type":"futures","pair":"BTC-USDT","contract_type":"this_week"},'
    b'{"volume":201143,"amount":201.143,"symbol":"BTC","value":9775067.0568,"contract_code":"BTC-USDT-211231",'
    b'"trade_amount":0,"trade_volume":0,"trade_turnover":0,"business_type":"futures","pair":"BTC-USDT",'
    b'"contract_type":"quarter"}],"ts":1638754059540}'
)


def _one_contract(body: bytes, index: int) -> bytes:
    """The documented answer cut to one item, as a ``contract_code=`` query returns it."""
    answer = orjson.loads(body)
    answer["data"] = [answer["data"][index]]
    return orjson.dumps(answer)


def test_swap_open_interest_poll_of_the_documented_answer() -> None:
    from collectors.venues.htx.swap import open_interest_frame

    normaliser = HtxSwapNormaliser()
    out = RecordBuffer()
    frame = open_interest_frame("BTC-USDT", _one_contract(OPEN_INTEREST_EXAMPLE, 0))
    assert orjson.loads(frame)["data"]["data"][0]["volume"] == 78696
    normaliser.on_frame(1638754059600000000, frame, out)
    normaliser.on_frame(
        1638754059700000000,
        open_interest_frame("BTC-USDT-211231", _one_contract(OPEN_INTEREST_EXAMPLE, 3)),
        out,
    )
    # volume in contracts, value in USDT, at the answer's ts
    assert out.open_interest == [
        ("htx-swap", "BTC-USDT-PERP", 1638754059540000000, 1638754059600000000, 78696.0, 3823138.2456, 0),
        ("htx-swap", "BTC-USDT-211231", 1638754059540000000, 1638754059700000000, 201143.0, 9775067.0568, 0),
    ]
    assert out.feed_events == []
    for bad in (
        open_interest_frame("BTC-USDT", OPEN_INTEREST_EXAMPLE),  # items of other contracts
        open_interest_frame("BTC-USDT", b'{"status":"error","err_code":1014,"err_msg":"x","ts":1}'),
        open_interest_frame("BTC-USDT", b'{"status":"ok","data":[],"ts":1638754059540}'),
        open_interest_frame("BTC-USDT", _one_contract(OPEN_INTEREST_EXAMPLE, 0).replace(b"78696", b"-1")),
        open_interest_frame(
            "BTC-USDT", _one_contract(OPEN_INTEREST_EXAMPLE, 0).replace(b"3823138.2456", b'"x"')
        ),
        open_interest_frame(
            "BTC-USDT", _one_contract(OPEN_INTEREST_EXAMPLE, 0).replace(b"1638754059540", b"null")
        ),
        open_interest_frame("../x", _one_contract(OPEN_INTEREST_EXAMPLE, 0)),
        open_interest_frame("BTC-USDT", b"null"),
        frame.replace("swap_open_interest", "swap_other"),
    ):
        normaliser.on_frame(1638754059800000000, bad, out)
    assert [e[4] for e in out.feed_events] == ["parse_error"] * 9 and len(out.open_interest) == 2


async def test_swap_fetch_poll_against_the_simulator_and_its_refusals() -> None:
    import aiohttp

    dialect = get_dialect("htx-swap")
    sim = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols))
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            frame = await dialect.fetch_poll(http, sim.rest_url, "open_interest", "BTC-USDT")
            with pytest.raises(aiohttp.ClientResponseError) as unknown:
                await dialect.fetch_poll(http, sim.rest_url, "open_interest", "NOPE-USDT")
            sim.faults.rest_429 = 1
            with pytest.raises(aiohttp.ClientResponseError) as limited:
                await dialect.fetch_poll(http, sim.rest_url, "open_interest", "BTC-USDT")
    finally:
        await sim.stop()
    assert unknown.value.status == 502 and limited.value.status == 429
    [item] = orjson.loads(frame)["data"]["data"]
    normaliser = HtxSwapNormaliser()
    out = RecordBuffer()
    normaliser.on_frame(1, frame, out)
    assert out.feed_events == []
    assert [r[1:2] + r[4:6] for r in out.open_interest] == [
        ("BTC-USDT-PERP", float(item["volume"]), item["value"])
    ]


# -- simulators end to end -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "symbols"), [("htx", ("btcusdt", "ethusdt")), ("htx-swap", ("BTC-USDT", "ETH-USDT"))]
)
async def test_simulator_round_trip_capture_replays_to_the_live_records(
    tmp_path: Path, exchange: str, symbols: tuple[str, str]
) -> None:
    """gzip frames, ping/pong, a dropped update that resyncs only that symbol, a disconnect; the
    captures (one per connection: spot has ``/ws`` and ``/feed``) replay to exactly the live records."""
    capture = tmp_path / "live.capture.gz"
    dialect = get_dialect(exchange)
    first, other = (dialect.normalise_symbol(s) for s in symbols)
    async with running(exchange, symbols, capture=capture) as run:
        await run.until(
            lambda: all(run.count(d, s) > 5 for d in ("trades", "book", "bbo") for s in (first, other))
        )
        await run.until(lambda: run.sim.pongs >= 2)  # type: ignore[attr-defined]
        run.sim.faults.drop_updates[symbols[0]] = 1
        await run.until(lambda: len(run.events("resync", first)) == 1)
        before = run.count("book", other)
        await run.until(lambda: run.count("book", other) > before + 20)
        assert len(run.events("gap", first)) == 1
        assert run.events("gap", other) == [] and run.events("resync", other) == []
        assert run.sim.heartbeat_drops == 0  # type: ignore[attr-defined]
        assert run.events("disconnect") == []
        await run.sim.disconnect_all()
        await run.until(lambda: len(run.events("resync", other)) == 1)
        assert getattr(run.sim, "req_rejected", 0) == 0  # requests were paced 100 ms apart
    # spot: /ws and /feed; swaps: /linear-swap-ws, /ws_index (mark), /linear-swap-notification (funding)
    connections = 2 if exchange == "htx" else 3
    files = sorted(tmp_path.glob("live*.capture.gz"))
    assert len(files) == connections
    replayed = RecordBuffer()
    for path in files:
        replayed.extend(replay_capture(dialect.new_normaliser(), path))
    live_events = [e for e in run.got.feed_events if e[2] != "connection"]
    key = lambda r: (r[1], r[3], r[8] if len(r) > 9 else 0)  # noqa: E731 - order across connections
    assert sorted(replayed.trades) == sorted(run.got.trades)
    assert replayed.book == run.got.book  # one connection carries the book
    assert sorted(replayed.bbo, key=key) == sorted(run.got.bbo, key=key)
    assert sorted(replayed.feed_events) == sorted(live_events)
    if exchange == "htx-swap":
        assert all(run.count(d, s) > 0 for d in ("mark_price", "funding") for s in (first, other))
    assert sorted(replayed.mark_price) == sorted(run.got.mark_price)
    assert sorted(replayed.funding) == sorted(run.got.funding)
    ids = [(r[1], r[4]) for r in run.got.trades]
    assert len(ids) == len(set(ids))  # the trade re-sent on every subscribe is de-duplicated
    assert assert_tops_match_bbo(run.got.book, run.got.bbo) > 10 or exchange == "htx-swap"


async def test_simulator_disconnects_a_client_that_does_not_pong() -> None:
    dialect = get_dialect("htx-swap")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTC-USDT",), heartbeat_interval_s=0.2))
    await sim.start()
    try:
        url = dialect.connection_url(sim.ws_url, Subscription(("BTC-USDT",)))
        async with websockets.connect(url) as ws:
            frames = []
            with pytest.raises(websockets.ConnectionClosed):
                for _ in range(100):
                    frames.append(gzip.decompress(await asyncio.wait_for(ws.recv(), 2)))
            # nothing subscribed: the frames were the two unanswered pings, then the close
            assert [list(orjson.loads(f)) for f in frames] == [["ping"], ["ping"]]
        assert sim.heartbeat_drops == 1  # type: ignore[attr-defined]
        async with websockets.connect(url) as ws:
            for _ in range(6):  # answering keeps the connection open past several pings
                ping = orjson.loads(gzip.decompress(await asyncio.wait_for(ws.recv(), 2)))
                await ws.send(orjson.dumps({"pong": ping["ping"]}).decode())
        assert sim.heartbeat_drops == 1  # type: ignore[attr-defined]
    finally:
        await sim.stop()


async def test_spot_simulator_limits_req_and_serves_mbp_only_on_feed() -> None:
    dialect = get_dialect("htx")
    sim = dialect.simulator(SimulatorConfig(symbols=("btcusdt",), heartbeat_interval_s=30))
    assert isinstance(sim, HtxSpotSimulator)
    await sim.start()
    try:
        async with websockets.connect(sim.ws_url + "/ws") as ws:
            await ws.send('{"sub":"market.btcusdt.mbp.150","id":"a"}')
            answer = orjson.loads(gzip.decompress(await ws.recv()))
            assert answer["status"] == "error" and "invalid topic" in answer["err-msg"]
        async with websockets.connect(sim.ws_url + "/feed") as ws:
            await ws.send('{"req":"market.btcusdt.mbp.150","id":"a"}')
            await ws.send('{"req":"market.btcusdt.mbp.150","id":"b"}')
            answers = [orjson.loads(gzip.decompress(await ws.recv())) for _ in range(2)]
            answers = [a for a in answers if "rep" in a or a.get("status") == "error"]
            assert answers[0]["rep"] == "market.btcusdt.mbp.150" and answers[0]["data"]["bids"]
            assert answers[1]["err-msg"] == "429 too many request" and answers[1]["id"] == "b"
    finally:
        await sim.stop()


async def test_swap_derivatives_round_trip_polls_open_interest_into_the_capture(tmp_path: Path) -> None:
    """Funding, mark, liquidations and the polled open interest through real websockets and REST: every
    open interest row equals its polled answer (value and time), and the capture replays to the live rows."""
    capture = tmp_path / "live.capture.gz"
    symbols = ("BTC-USDT-PERP", "ETH-USDT-PERP")
    async with running("htx-swap", ("BTC-USDT", "ETH-USDT"), capture=capture) as run:
        await run.until(
            lambda: all(
                run.count(ds, s) > 0
                for ds in ("mark_price", "funding", "liquidations", "open_interest")
                for s in symbols
            ),
            timeout_s=15.0,
        )
        assert run.sim.open_interest_requests >= 2  # each contract at once, then every 10 s
    assert not {e[4] for e in run.got.feed_events} & {"parse_error", "rest_error", "stale", "subscribe_error"}
    assert {r[5] for r in run.got.liquidations} <= {"buy", "sell"}
    files = sorted(tmp_path.glob("live*"))
    polled = {
        ts: orjson.loads(frame)
        for path in files
        for item in read_capture(path)
        if isinstance(item, tuple)
        for ts, frame in [item]
        if frame.startswith(b'{"op":"poll"')
    }
    assert polled and all(p["generated"] is True for p in polled.values())
    for row in run.got.open_interest:  # every row equals the answer received at its ts_recv
        answer = polled[row[3]]["data"]
        [item] = answer["data"]
        assert row[1] == f"{item['contract_code']}-PERP" and row[2] == answer["ts"] * 10**6
        assert (row[4], row[5]) == (float(item["volume"]), item["value"])
    replayed = RecordBuffer()
    for path in files:
        replayed.extend(replay_capture(get_dialect("htx-swap").new_normaliser(), path))
    for ds in ("mark_price", "funding", "liquidations", "open_interest"):
        assert sorted(replayed.rows(ds)) == sorted(run.got.rows(ds)), ds
