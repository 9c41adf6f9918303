"""MEXC spot v3 (protobuf pushes): what is particular to the venue.

There is no recording of MEXC's protobuf streams in ``../shared/samples``. These tests build the wire
bytes of the documented message examples (https://www.mexc.com/api-docs/spot-v3/websocket-market-streams,
checked 2026-12-05: the page shows each push as JSON) from the field numbers of MEXC's ``.proto`` files
(https://github.com/mexcdevelop/websocket-proto), with a tiny encoder written here independently of the
module's own, so that the decoder is not only checked against itself.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from collectors.base import Subscription
from collectors.book import ASK, BID
from collectors.capture import replay_capture
from collectors.venues.mexc import protobuf as pb
from collectors.venues.mexc.client import MexcDialect, MexcNormaliser, snapshot_frame
from schemas import RecordBuffer
from tests.collectors.test_connection import running

TS = 1_736_409_765_100_000_000


# -- an independent protobuf encoder (wire format only) ------------------------------------------------
def _v(n: int) -> bytes:
    out = b""
    while n > 0x7F:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def _len(field: int, data: bytes) -> bytes:
    return _v(field << 3 | 2) + _v(len(data)) + data


def _s(field: int, text: str) -> bytes:
    return _len(field, text.encode())


def _i(field: int, n: int) -> bytes:
    return _v(field << 3) + _v(n)


def wrapper(channel: str, symbol: str, send_time: int, body_field: int, body: bytes) -> bytes:
    return _s(1, channel) + _s(3, symbol) + _i(6, send_time) + _len(body_field, body)


def b64(data: bytes) -> bytes:
    return b"b64:" + base64.b64encode(data)


# The documented examples, as bytes.
DEALS = wrapper(
    "spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDT",
    "BTCUSDT",
    1736409765052,
    314,
    _len(1, _s(1, "93220.00") + _s(2, "0.04438243") + _i(3, 2) + _i(4, 1736409765051))
    + _len(1, _s(1, "93221.50") + _s(2, "0.5") + _i(3, 1) + _i(4, 1736409765051))
    + _s(2, "spot@public.aggre.deals.v3.api.pb@100ms"),
)


def depth(
    frm: int,
    to: int,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]] | None = None,
    ms: int = 1736411507002,
) -> bytes:
    body = b"".join(_len(1, _s(1, p) + _s(2, q)) for p, q in asks or [])
    body += b"".join(_len(2, _s(1, p) + _s(2, q)) for p, q in bids)
    body += _s(3, "spot@public.aggre.depth.v3.api.pb@100ms") + _s(4, str(frm)) + _s(5, str(to))
    return wrapper("spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT", "BTCUSDT", ms, 313, body)


TICKER = wrapper(
    "spot@public.aggre.bookTicker.v3.api.pb@100ms@BTCUSDT",
    "BTCUSDT",
    1736412092433,
    315,
    _s(1, "93387.28") + _s(2, "3.73485") + _s(3, "93387.29") + _s(4, "7.669875"),
)


def snapshot(last_id: int) -> bytes:
    body = orjson.dumps(
        {
            "lastUpdateId": last_id,
            "bids": [["92877.58", "1.5"], ["92870.00", "2"]],
            "asks": [["92880.00", "3"]],
        }
    )
    return snapshot_frame("BTCUSDT", body).encode()


def run(*frames: bytes) -> tuple[MexcNormaliser, RecordBuffer]:
    norm = MexcNormaliser()
    out = RecordBuffer()
    for i, f in enumerate(frames):
        norm.on_frame(TS + i, f, out)
    return norm, out


def kinds(out: RecordBuffer) -> list[str]:
    return [e[4] for e in out.feed_events]


def test_trades_equal_the_documented_deals_field_by_field() -> None:
    _, out = run(b'{"id":0,"code":0,"msg":"spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDT"}', b64(DEALS))
    assert [(t[1], t[2], t[4], t[5], t[6], t[7]) for t in out.trades] == [
        ("BTC-USDT", 1736409765051_000_000, "1736409765051-1736409765052-0", 93220.0, 0.04438243, "sell"),
        ("BTC-USDT", 1736409765051_000_000, "1736409765051-1736409765052-1", 93221.5, 0.5, "buy"),
    ]
    assert kinds(out) == []


def test_book_ticker() -> None:
    _, out = run(b64(TICKER))
    assert [(b[1], b[2], b[4], b[5], b[6], b[7], b[8]) for b in out.bbo] == [
        ("BTC-USDT", 1736412092433_000_000, 93387.28, 3.73485, 93387.29, 7.669875, None)
    ]


def test_book_sync_follows_the_documented_procedure() -> None:
    # pushes buffered before the snapshot: one outdated (toVersion <= lastUpdateId), one overlapping
    old = depth(10589632300, 10589632350, [("1", "1")])
    overlap = depth(10589632355, 10589632359, [("92877.58", "0.00000000")])  # the documented push's level
    after = depth(10589632360, 10589632361, [("92871.00", "4")], [("92880.00", "0")])
    norm, out = run(b64(old), b64(overlap), snapshot(10589632358), b64(after))
    assert norm.snapshot_requests == set()
    book = norm.books.books["BTCUSDT"]
    assert book.synced and book.last_seq == 10589632361
    updates = [(r[4], r[5], r[6], r[8]) for r in out.book if not r[7]]
    assert updates == [
        (BID, 92877.58, 0.0, 10589632359),
        (BID, 92871.0, 4.0, 10589632361),
        (ASK, 92880.0, 0.0, 10589632361),
    ]
    assert book.book.best_bid() == (92871.0, 4.0) and book.book.best_ask() is None
    assert kinds(out) == []
    # then a lost push: fromVersion must be previous toVersion + 1
    out2 = RecordBuffer()
    norm.on_frame(TS + 10, b64(depth(10589632363, 10589632364, [("92860", "1")])), out2)
    assert kinds(out2) == ["gap"] and not book.synced and norm.snapshot_requests == {"BTCUSDT"}
    # a repeat is a duplicate; an overlap that is not right after a snapshot is a gap
    _, out3 = run(snapshot(100), b64(depth(101, 102, [("1", "1")])), b64(depth(101, 102, [("1", "1")])))
    assert kinds(out3) == ["duplicate"]
    _, out4 = run(snapshot(100), b64(depth(101, 102, [("1", "1")])), b64(depth(102, 103, [("1", "1")])))
    assert kinds(out4) == ["gap"]


def test_a_snapshot_older_than_the_stream_is_fetched_again() -> None:
    norm, out = run(b64(depth(500, 510, [("1", "1")])), snapshot(400))
    assert kinds(out) == ["snapshot_stale"] and norm.snapshot_requests == {"BTCUSDT"} and out.book == []
    out2 = RecordBuffer()
    norm.on_frame(TS + 5, snapshot(505), out2)
    assert [r[8] for r in out2.book if not r[7]] == [510] and norm.books.books["BTCUSDT"].synced


def test_decode_binary_keeps_json_and_wraps_protobuf() -> None:
    dialect = MexcDialect()
    assert dialect.decode_binary(b'{"id":0,"code":0,"msg":"PONG"}') == b'{"id":0,"code":0,"msg":"PONG"}'
    wrapped = dialect.decode_binary(DEALS)
    assert wrapped.startswith(b"b64:") and base64.b64decode(wrapped[4:]) == DEALS
    assert b"\n" not in wrapped  # one capture line
    # the module's own encoder writes the same bytes as the independent one (field-number order)
    push = pb.decode_push(TICKER)
    assert pb.encode_push(push) == TICKER


def test_subscription_and_limits() -> None:
    dialect = MexcDialect()
    [frame] = dialect.subscribe_frames(Subscription(("BTCUSDT",)))
    assert orjson.loads(frame) == {
        "method": "SUBSCRIPTION",
        "params": [
            "spot@public.aggre.deals.v3.api.pb@100ms@BTCUSDT",
            "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT",
            "spot@public.aggre.bookTicker.v3.api.pb@100ms@BTCUSDT",
        ],
    }
    assert dialect.max_streams_per_connection == 30
    assert (
        dialect.normalise_symbol("ETHUSDC") == "ETH-USDC" and dialect.native_symbol("btc-usdt") == "BTCUSDT"
    )
    _, out = run(b'{"id":0,"code":0,"msg":"Not Subscribed successfully! [spot@x]. Reason: Blocked! "}')
    assert kinds(out) == ["subscribe_error"]


# -- hostile protobuf ---------------------------------------------------------------------------------
def _hostile() -> list[bytes]:
    frames: list[bytes] = []
    frames += [DEALS[:n] for n in range(1, len(DEALS))]  # every truncation
    frames.append(_v(1 << 3 | 0) + _v(5))  # channel as a varint: wrong wire type
    frames.append(_s(1, "c") + _s(3, "BTCUSDT") + _v(6 << 3 | 2) + _v(1) + b"x")  # sendTime as bytes
    frames.append(_s(1, "c") + _v(314 << 3 | 0) + _v(1))  # body as a varint
    frames.append(_s(1, "c") + _v(314 << 3 | 2) + _v(2**62) + b"abc")  # huge length
    frames.append(_v(1 << 3 | 2) + _v(2**63))  # huge length, nothing after
    frames.append(_s(1, "c") + b"\xff" * 11 + b"\x01")  # varint longer than 10 bytes
    frames.append(_s(1, "c") + _v(7 << 3 | 3) + _v(7 << 3 | 4))  # group wire types
    frames.append(_s(1, "c") + _v(9 << 3 | 6))  # undefined wire type
    frames.append(b"\x00\x01")  # field number 0
    frames.append(_len(1, b"\xff\xfe") + _s(3, "BTCUSDT"))  # channel not UTF-8
    nested = b"x"
    for _ in range(5000):  # deep nesting inside an unknown field and inside a known body
        nested = _len(1, nested)
    frames.append(_s(1, "c") + _s(3, "BTCUSDT") + _len(99, nested))
    frames.append(_s(1, "c") + _s(3, "BTCUSDT") + _i(6, 1) + _len(314, nested))
    frames.append(_s(1, "c") + _s(3, "../../etc") + _i(6, 1) + _len(315, _s(1, "1") + _s(3, "2")))
    frames.append(wrapper("c", "BTCUSDT", 1, 314, _len(1, _s(1, "NaN") + _s(2, "1") + _i(3, 1) + _i(4, 1))))
    frames.append(wrapper("c", "BTCUSDT", 1, 314, _len(1, _s(1, "1") + _s(2, "-1") + _i(3, 1) + _i(4, 1))))
    frames.append(wrapper("c", "BTCUSDT", 1, 314, _len(1, _s(1, "1") + _s(2, "1") + _i(3, 7) + _i(4, 1))))
    frames.append(wrapper("c", "BTCUSDT", 1, 313, _s(4, "9" * 40) + _s(5, "1")))  # absurd version
    frames.append(wrapper("c", "BTCUSDT", 1, 313, _s(4, "5") + _s(5, "4")))  # from > to
    frames.append(
        wrapper("c", "BTCUSDT", 1, 313, _len(2, _s(1, "inf") + _s(2, "1")) + _s(4, "5") + _s(5, "6"))
    )
    frames.append(wrapper("c", "BTCUSDT", 1, 302, b""))  # a body this module does not subscribe
    frames.append(_s(1, "c"))  # no body
    return [b64(f) for f in frames] + [b"b64:***", b"b64:" + b"A" * 7]


def test_hostile_protobuf_is_a_parse_error_never_an_exception() -> None:
    frames = _hostile()
    norm = MexcNormaliser()
    out = RecordBuffer()
    for i, f in enumerate(frames):
        norm.on_frame(TS + i, f, out)  # must not raise
    errors = [e for e in out.feed_events if e[4] == "parse_error"]
    assert len(errors) == len(frames)  # every truncation of a push, too (its body is its last field)
    assert norm.parse_errors == len(errors)
    for t in out.trades:
        assert t[1] == "BTC-USDT" and t[5] > 0 and t[6] > 0
    assert out.book == [] and out.bbo == []


def test_hostile_protobuf_work_is_linear() -> None:
    # a 4 MB frame of nested length prefixes, and one of a million tiny unknown fields
    nested = b"x"
    while len(nested) < 4_000_000:
        nested = _len(1, nested) * 2
    many = _s(1, "c") + _i(50, 1) * 1_000_000
    norm = MexcNormaliser()
    out = RecordBuffer()
    start = time.monotonic()
    norm.on_frame(TS, b64(_s(1, "c") + _len(99, nested)), out)
    norm.on_frame(TS, b64(many), out)
    assert time.monotonic() - start < 5.0
    assert kinds(out) == ["parse_error", "parse_error"]


@pytest.mark.parametrize("frame", [b"", b"{", b"null", b"[]", b"\xff\xfe", b"b64:", b'{"method":"PING"}'])
def test_garbage_text(frame: bytes) -> None:
    _, out = run(frame)
    assert kinds(out) == ["parse_error"]


async def test_live_frames_are_binary_and_captured_as_b64(tmp_path: Path) -> None:
    capture = tmp_path / "mexc.capture"
    async with running("mexc", ("BTCUSDT", "ETHUSDT"), capture=capture) as run:
        await run.until(lambda: run.count("trades", "ETH-USDT") > 3 and run.count("book", "BTC-USDT") > 20)
        async with aiohttp.ClientSession() as http, http.ws_connect(run.sim.ws_url + "/ws") as ws:
            await ws.send_str(
                '{"method":"SUBSCRIPTION","params":["spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"]}'
            )
            first = await ws.receive(timeout=5)
            second = await ws.receive(timeout=5)
            assert first.type == aiohttp.WSMsgType.TEXT and orjson.loads(first.data)["code"] == 0
            assert second.type == aiohttp.WSMsgType.BINARY
            assert pb.decode_push(second.data).channel == "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"
    lines = capture.read_bytes().splitlines()
    assert any(line.split(b" ", 1)[1].startswith(b"b64:") for line in lines if line)
    assert any(b'"generated":true' in line for line in lines)
    replayed = replay_capture(MexcNormaliser(), capture)
    assert replayed.trades == run.got.trades and replayed.book == run.got.book and replayed.bbo == run.got.bbo
