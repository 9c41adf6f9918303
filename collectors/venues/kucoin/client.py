"""What KuCoin spot and KuCoin futures share on the client side: the token flow, the ping, the
subscribe frames, the control messages and the level-2 sequence rule.

Documentation followed (checked 2026-12-05; KuCoin's "docs-new" site, whose "Classic" websocket API is
the one serving ``/market/*`` and ``/contractMarket/*`` topics; the 2025 "Unified/Pro" websocket is a
separate API for unified accounts and is not used here):
- https://www.kucoin.com/docs-new/websocket-api/base-info/introduction (token, welcome, ping, subscribe)
- https://www.kucoin.com/docs-new/api-3470294 (POST /api/v1/bullet-public, spot) and
  https://www.kucoin.com/docs-new/api-3470297 (the same on the futures host)
- https://www.kucoin.com/docs-new/rate-limit (REST pools: Public 2000 weight / 30 s; bullet-public
  weight 10)

Connection: ``POST {rest}/api/v1/bullet-public`` (no authentication) answers
``{"code":"200000","data":{"token":..,"instanceServers":[{"endpoint","encrypt","protocol",
"pingInterval":18000,"pingTimeout":10000}]}}``. Every connection attempt asks for a token (the
:meth:`KucoinDialect.prepare_connection` hook of the connection layer) and opens
``<endpoint>?token=..&connectId=..``. The token is a credential: it lives only in that URL, which the
connection layer redacts (query string dropped) in every event; no frame we store carries it (the
``welcome`` message carries the connectId). The server sends ``{"id":connectId,"type":"welcome"}``;
KuCoin accepts subscriptions sent before it arrives (the 2021 recording: cryptofeed's subscriptions left
9 ms before the welcome and were all acknowledged), so the connection layer's immediate subscribe is
kept. The client sends ``{"id":..,"type":"ping"}`` every :data:`PING_INTERVAL_S` (below the documented
pingInterval of 18 s; the server drops a client silent for pingInterval + pingTimeout) and gets
``pong``. Subscriptions: ``{"id","type":"subscribe","topic":"/prefix:SYM1,SYM2","privateChannel":false,
"response":true}`` answered by ``{"id","type":"ack"}``; failures by ``{"type":"error","code","data"}``
(recorded as ``exchange_error`` events).

Limits: a topic carries at most 100 symbols; KuCoin's published websocket limits (classic docs) are 100
topics per connection, 100 client messages per 10 s, 30 new connections per minute per user. Tokens
expire after 24 h of disconnection only; KuCoin does not document a forced disconnect, so no planned
rotation is configured.

Level-2 sequence rule (both markets, per symbol; "calibration procedure" of the increment topics):
buffer increments, fetch a REST snapshot carrying ``sequence``, drop buffered messages wholly at or
before it, apply the rest; a message covering ``[start, end]`` continues the book when
``start <= last + 1 and end > last``; within it only changes whose own sequence is above ``last`` are
applied (the others are already in the snapshot); a change with price 0 only advances the sequence.
``start > last + 1`` is a ``gap`` (that symbol is cleared and re-snapshotted, the others flow on);
``end <= last`` after sync is a repeat (``duplicate`` event, ignored). Book rows carry ``seq = end``.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp
import orjson

from schemas import RecordBuffer

from ...base import ExchangeDialect, Normaliser, Subscription
from ...book import ASK, BID, SymbolBooks, SyncedBook, add_flags, parse_levels
from ...dedupe import RecentTradeIds
from ...events import INT64_MAX, ParseError, emit_event

#: Seconds between application pings (documented pingInterval 18 s, pingTimeout 10 s).
PING_INTERVAL_S = 15.0
PING_FRAME = '{"id":"ticktape-ping","type":"ping"}'
#: Symbols in one topic (KuCoin: "a topic supports up to 100 symbols").
MAX_SYMBOLS_PER_TOPIC = 100
#: Increments kept per symbol while its snapshot is awaited; beyond it the oldest go (counted).
MAX_PENDING = 20_000
TOKEN_PATH = "/api/v1/bullet-public"
OK_CODE = "200000"


def parse_sequence(value: Any, what: str = "sequence") -> int:
    """A KuCoin sequence number (an integer, or its decimal string); :class:`ParseError` otherwise."""
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) < 20:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**19:
        return value
    raise ParseError(f"bad {what} {str(value)[:40]!r}", channel="book")


def ns_time(value: Any, what: str = "time") -> int:
    """A nanosecond timestamp (integer or decimal string) since the epoch; :class:`ParseError` otherwise.

    Any positive 64-bit value is a time: one far from the receive time (1970, 2100) is kept and flagged
    ``BAD_TS_EXCHANGE`` by the shared time check, not rejected (issue 12); beyond int64 it cannot be
    stored and is a parse error.
    """
    if isinstance(value, str) and value.isdigit() and value.isascii() and len(value) < 21:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= INT64_MAX:
        return value
    raise ParseError(f"bad nanosecond {what} {str(value)[:40]!r}")


def taker_side(value: Any) -> str:
    """KuCoin's ``side`` of a match is the taker's side."""
    if value == "buy" or value == "sell":
        return str(value)
    raise ParseError(f"unknown trade side {str(value)[:20]!r}", channel="trades")


@dataclass(slots=True)
class Increment:
    """One validated level-2 increment: sequence range, exchange time and changes.

    ``changes`` holds ``(sequence, side, parsed level)``; a sequence-only change (price 0) has no level.
    """

    start: int
    end: int
    ts_exchange: int | None
    changes: list[tuple[int, str, tuple[float, float, str, str] | None]]


def parse_change(
    seq: int, side: str, price: Any, size: Any
) -> tuple[int, str, tuple[float, float, str, str] | None]:
    """One change; price "0" (any zero) is KuCoin's sequence-only change."""
    if isinstance(price, str | int | float) and not isinstance(price, bool):
        try:
            if float(price) == 0.0:
                return (seq, side, None)
        except ValueError:
            pass
    return (seq, side, parse_levels([(price, size)])[0])


def parse_bullet(body: bytes | str) -> tuple[str, str]:
    """``(token, endpoint)`` of a bullet-public answer; :class:`ValueError` when it is not one."""
    try:
        msg = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("bullet-public answer is not JSON") from None
    if not isinstance(msg, dict) or msg.get("code") != OK_CODE or not isinstance(msg.get("data"), dict):
        code = msg.get("code") if isinstance(msg, dict) else None
        raise ValueError(f"bullet-public refused (code {str(code)[:20]!r})")
    data = msg["data"]
    token, servers = data.get("token"), data.get("instanceServers")
    if not isinstance(token, str) or not token or not isinstance(servers, list) or not servers:
        raise ValueError("bullet-public answer has no token or no instance server")
    server = servers[0]
    endpoint = server.get("endpoint") if isinstance(server, dict) else None
    if not isinstance(endpoint, str) or not endpoint.startswith(("wss://", "ws://")):
        raise ValueError("bullet-public instance server has no websocket endpoint")
    return token, endpoint


class KucoinNormaliser(Normaliser, abc.ABC):
    """Frames of one KuCoin connection -> records. Subclasses parse their market's payloads."""

    exchange: ClassVar[str]
    #: topic of the generated REST snapshot frames (capture format)
    snapshot_topic: ClassVar[str]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, self.normalise_native)
        self.trade_ids = RecentTradeIds()
        #: sequence of each book's latest snapshot: increments at or before it are expected, not repeats
        self.snapshot_seq: dict[str, int] = {}

    @abc.abstractmethod
    def normalise_native(self, native: Any) -> str:
        """Normalised symbol of a native one (validated by :class:`SymbolBooks`)."""

    @abc.abstractmethod
    def on_data(
        self, ts_recv: int, prefix: str, native: str, data: dict[str, Any], out: RecordBuffer, subject: Any
    ) -> None:
        """One ``message`` of a topic ``prefix:native`` (``subject`` as sent: topics such as
        ``/contract/instrument`` carry several kinds of message)."""

    @abc.abstractmethod
    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        """Exchange time of a REST snapshot's data."""

    def on_poll(self, ts_recv: int, prefix: str, native: str, body: Any, out: RecordBuffer) -> None:
        """A generated REST poll frame (:func:`poll_frame`) of a channel offered only over REST; none
        by default."""
        raise ParseError(f"unexpected poll topic {prefix[:60]!r}")

    # -- frames ----------------------------------------------------------------------------------
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        kind = msg.get("type")
        if kind == "message":
            topic, data = msg.get("topic"), msg.get("data")
            if not isinstance(topic, str) or not isinstance(data, dict):
                raise ParseError("message without topic or data")
            prefix, sep, native = topic.partition(":")
            if not sep or not native or "," in native:
                raise ParseError(f"unexpected topic {topic[:80]!r}")
            self.on_data(ts_recv, prefix, native, data, out, msg.get("subject"))
        elif kind == "snapshot" and msg.get("generated") is True:
            topic = msg.get("topic")
            prefix, _, native = topic.partition(":") if isinstance(topic, str) else ("", "", "")
            if prefix != self.snapshot_topic or not native:
                raise ParseError(f"unexpected snapshot topic {str(topic)[:80]!r}", channel="book")
            self.on_snapshot(ts_recv, native, msg.get("data"), out)
        elif kind == "poll" and msg.get("generated") is True:
            topic = msg.get("topic")
            prefix, _, native = topic.partition(":") if isinstance(topic, str) else ("", "", "")
            if not prefix or not native:
                raise ParseError(f"unexpected poll topic {str(topic)[:80]!r}")
            self.on_poll(ts_recv, prefix, native, msg.get("data"), out)
        elif kind in ("welcome", "ack", "pong"):
            return
        elif kind == "error":
            detail = {"code": str(msg.get("code"))[:40], "data": str(msg.get("data"))[:400]}
            emit_event(out, self.exchange, None, "connection", ts_recv, "exchange_error", detail)
        else:
            raise ParseError(f"unknown message type {str(kind)[:40]!r}")

    def trade(
        self,
        out: RecordBuffer,
        native: str,
        ts_exchange: int,
        ts_recv: int,
        trade_id: Any,
        price: float,
        size: float,
        side: str,
    ) -> None:
        """One trade row, unless its id was already published for the symbol (``duplicate`` event)."""
        symbol = self.symbols.name(native)
        if not isinstance(trade_id, str) or not trade_id or len(trade_id) > 64:
            raise ParseError(f"bad trade id {str(trade_id)[:40]!r}", symbol, "trades")
        if self.trade_ids.seen(symbol, trade_id):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": trade_id})
            return
        self.emit_trade(out, symbol, ts_exchange, ts_recv, trade_id, price, size, side)

    # -- level 2 ---------------------------------------------------------------------------------
    def on_increment(self, ts_recv: int, native: str, inc: Increment, out: RecordBuffer) -> None:
        """A validated increment: buffered until the book has a snapshot, then the sequence rule."""
        book = self.symbols.book(native)
        if not book.synced:
            self.buffer(book, native, ts_recv, inc, out)
            return
        self.apply(ts_recv, book, native, inc, out)

    def buffer(self, book: SyncedBook, native: str, ts_recv: int, inc: Increment, out: RecordBuffer) -> None:
        """Keeps an increment until the snapshot arrives, and asks for the snapshot."""
        if len(book.pending) >= MAX_PENDING:
            _, dropped = book.pending.pop(0)
            emit_event(
                out,
                self.exchange,
                book.symbol,
                "book",
                ts_recv,
                "dropped",
                {"reason": "snapshot wait buffer full", "sequence_end": dropped.end},
            )
        book.pending.append((ts_recv, inc))
        self.snapshot_requests.add(native)

    def apply(self, ts_recv: int, book: SyncedBook, native: str, inc: Increment, out: RecordBuffer) -> None:
        """Applies an increment to a synced book, or detects a gap (the rule in the module docstring)."""
        last = book.last_seq
        assert last is not None
        if inc.end <= last:
            # Increments at or before the snapshot are expected (buffered ones, and the stream often
            # lags the REST answer); after it, one already applied is a repeat.
            if inc.end > self.snapshot_seq.get(native, -1):
                emit_event(
                    out,
                    self.exchange,
                    book.symbol,
                    "book",
                    ts_recv,
                    "duplicate",
                    {"sequence_start": inc.start, "sequence_end": inc.end, "book_sequence": last},
                )
            return
        if inc.start > last + 1:
            book.gap(
                out,
                ts_recv,
                "gap",
                {"expected": last + 1, "sequence_start": inc.start, "missing": inc.start - last - 1},
            )
            self.buffer(book, native, ts_recv, inc, out)
            return
        bids = [lvl for seq, side, lvl in inc.changes if lvl is not None and side == BID and seq > last]
        asks = [lvl for seq, side, lvl in inc.changes if lvl is not None and side == ASK and seq > last]
        start = len(out.book)
        if bids:
            book.apply_parsed(out, inc.ts_exchange, ts_recv, BID, bids, inc.end)
        if asks:
            book.apply_parsed(out, inc.ts_exchange, ts_recv, ASK, asks, inc.end)
        add_flags(out.book, start, self.time_flags.flags(inc.ts_exchange, ts_recv))
        book.last_seq = inc.end
        book.check_crossed(out, ts_recv, {"sequence": inc.end})

    def on_snapshot(self, ts_recv: int, native: str, body: Any, out: RecordBuffer) -> None:
        """A generated REST snapshot frame: reset the book, then play the buffered increments back."""
        book = self.symbols.book(native)
        if (
            not isinstance(body, dict)
            or body.get("code") != OK_CODE
            or not isinstance(body.get("data"), dict)
        ):
            code = body.get("code") if isinstance(body, dict) else None
            raise ParseError(f"snapshot refused (code {str(code)[:20]!r})", book.symbol, "book")
        data = body["data"]
        seq = parse_sequence(data.get("sequence"), "snapshot sequence")
        bids, asks = data.get("bids"), data.get("asks")
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise ParseError("snapshot bids/asks are not lists", book.symbol, "book")
        ts_exchange = self.snapshot_time(data)
        pending = book.pending
        book.pending = []
        self.snapshot_requests.discard(native)
        book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
        self.snapshot_seq[native] = seq
        for inc_recv, inc in pending:
            if not book.synced:
                book.pending.append((inc_recv, inc))  # a replayed increment broke the sync again
                continue
            self.apply(inc_recv, book, native, inc, out)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Every book is rebuilt from a new snapshot after a disconnect."""
        for native, book in self.symbols.books.items():
            book.reset()
            self.snapshot_requests.discard(native)


def snapshot_frame(topic: str, native_symbol: str, body: str | bytes) -> str:
    """A REST snapshot body wrapped as a generated capture frame (DESIGN.md, capture format)."""
    text = body.decode() if isinstance(body, bytes) else body
    name = orjson.dumps(f"{topic}:{native_symbol}").decode()
    return f'{{"type":"snapshot","generated":true,"topic":{name},"data":{text}}}'


def poll_frame(prefix: str, native_symbol: str, body: str | bytes) -> str:
    """A REST poll answer (a channel KuCoin offers only over REST) wrapped as a generated capture frame
    ``{"type":"poll","generated":true,"topic":"<prefix>:<symbol>","data":<body>}``."""
    text = body.decode() if isinstance(body, bytes) else body
    name = orjson.dumps(f"{prefix}:{native_symbol}").decode()
    return f'{{"type":"poll","generated":true,"topic":{name},"data":{text}}}'


def refused_unless_ok(resp: aiohttp.ClientResponse, body: bytes, what: str) -> None:
    """Raises ``ClientResponseError`` for an answer whose ``code`` is not KuCoin's success code: KuCoin
    answers some refusals with HTTP 200 and an error code (429000: too many requests)."""
    try:
        code = orjson.loads(body).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        code = None
    if code != OK_CODE:
        raise aiohttp.ClientResponseError(
            resp.request_info,
            resp.history,
            status=429 if code == "429000" else 502,
            message=f"{what} refused (code {str(code)[:20]!r})",
            headers=resp.headers,
        )


class KucoinDialect(ExchangeDialect, abc.ABC):
    """Endpoints, token flow, subscriptions and snapshots shared by KuCoin spot and futures."""

    #: the websocket endpoint comes from bullet-public; this is the documented one, for reference only
    default_ws_url: ClassVar[str]
    #: KuCoin counts topics (one per symbol and channel) against 100 per connection
    max_streams_per_connection: ClassVar[int] = 100
    app_ping: ClassVar[tuple[str, float] | None] = (PING_FRAME, PING_INTERVAL_S)
    #: our channel -> topic prefix
    topics: ClassVar[dict[str, str]]
    #: symbols joined in one topic (futures topics take one symbol each)
    symbols_per_topic: ClassVar[int] = MAX_SYMBOLS_PER_TOPIC
    snapshot_path: ClassVar[str]
    snapshot_topic: ClassVar[str]
    snapshot_weight: ClassVar[int] = 2

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        # Without a token this URL is refused; the connection layer uses prepare_connection.
        return ws_url

    async def prepare_connection(
        self, http: aiohttp.ClientSession, rest_url: str | None, ws_url: str, sub: Subscription
    ) -> str:
        """Asks bullet-public for a token and an endpoint; returns ``<endpoint>?token=..&connectId=..``."""
        if rest_url is None:
            raise ValueError(f"{self.exchange_id}: a REST URL is needed for the websocket token")
        async with http.post(f"{rest_url.rstrip('/')}{TOKEN_PATH}") as resp:
            resp.raise_for_status()
            body = await resp.read()
        token, endpoint = parse_bullet(body)
        query = urlencode({"token": token, "connectId": uuid.uuid4().hex})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        frames = []
        n = 0
        prefixes: list[str] = []  # several channels may share one topic (``/contract/instrument``)
        for channel in sub.channels:
            if channel not in self.topics:
                continue  # offered over REST only (polled: :meth:`rest_polls`)
            if self.topics[channel] not in prefixes:
                prefixes.append(self.topics[channel])
        for prefix in prefixes:
            for i in range(0, len(sub.symbols), self.symbols_per_topic):
                n += 1
                chunk = ",".join(sub.symbols[i : i + self.symbols_per_topic])
                frames.append(
                    orjson.dumps(
                        {
                            "id": str(n),
                            "type": "subscribe",
                            "topic": f"{prefix}:{chunk}",
                            "privateChannel": False,
                            "response": True,
                        }
                    ).decode()
                )
        return frames

    def snapshot_request_weight(self, native_symbol: str) -> int:
        return self.snapshot_weight

    async def fetch_snapshot(self, http: aiohttp.ClientSession, rest_url: str, native_symbol: str) -> str:
        async with http.get(
            f"{rest_url.rstrip('/')}{self.snapshot_path}", params={"symbol": native_symbol}
        ) as resp:
            resp.raise_for_status()
            body = await resp.read()
            refused_unless_ok(resp, body, "snapshot")
        return snapshot_frame(self.snapshot_topic, native_symbol, body)


def split_topic_symbols(topic: str) -> tuple[str, Sequence[str]]:
    """``"/market/level2:A,B"`` -> ``("/market/level2", ["A", "B"])``."""
    prefix, _, rest = topic.partition(":")
    return prefix, [s for s in rest.split(",") if s]
