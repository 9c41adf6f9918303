"""Coinbase International Exchange market data websocket (exchange id ``coinbase-international``).

Documentation followed (checked 2026-12-05 through the search tool's stored copies):
- Overview: https://docs.cdp.coinbase.com/international-exchange/websocket-feed/websocket-overview
  (endpoint ``wss://ws-md.international.coinbase.com``, ``SUBSCRIBE`` within 3 s, ``SNAPSHOT`` then
  ``UPDATE`` messages, "sequence numbers are increasing integer values for the entire session, with
  each new message being exactly one sequence number greater than the one before it"; subscription
  confirmations carry none)
- Authentication: https://docs.cdp.coinbase.com/international-exchange/websocket-feed/authentication
  (``time``/``key``/``passphrase``/``signature`` on the subscription; ``time`` within 30 s; the
  signature is the base64 HMAC-SHA256, keyed with the base64-decoded API secret, of
  ``time + key + "CBINTLMD" + passphrase``)
- Channels: https://docs.cdp.coinbase.com/international-exchange/websocket-feed/channels
  (``LEVEL2`` top 20 levels, ``MATCH``, ``LEVEL1``, ``FUNDING``, ``RISK``, ``INSTRUMENTS``; the
  ``INSTRUMENTS`` example shows perpetuals quoted in USDC, ``quote_asset_name: USDC``, and notional
  amounts "in USDC"; settlement currency is not named on the page, USDC is inferred)
- Rate limits: https://docs.cdp.coinbase.com/international-exchange/introduction/rate-limits-overview
  (not among the stored copies; a third-party summary of it retrieved 2026-07-26 gives ten connection
  attempts in any 30 s)
- Migration notices: https://docs.deribit.com/articles/intx-api-migration and
  https://docs.cdp.coinbase.com/api-reference/advanced-trade-api — Coinbase announced that international
  derivatives move from INTX to a Deribit-powered gateway (cutover announced for 2026-09-09 / 2026-10-01,
  "subject to change"). This module speaks the INTX feed as documented; if that feed is no longer served
  live, it still replays INTX captures; the new gateway speaks Deribit's JSON-RPC (a Deribit venue).

Authentication. Market data on INTX needs an API key even for public channels. The key, its secret and
passphrase come from the environment only (``TICKTAPE_COINBASE_INTX_API_KEY``, ``..._API_SECRET``,
``..._PASSPHRASE``; like every secret of ``ticktape.config``, never from a file or an option). They are
only ever put in the frames the collector *sends* (never captured: captures hold received frames), and
never logged; without them :meth:`CoinbaseInternationalDialect.prepare_connection` fails with a clear
``ValueError`` (a failed connect, retried with backoff). The simulator checks the signature: it uses the
configured key, or issues one to its dialect when none is configured (``ticktape demo``; a separate
``ticktape simulate`` and ``collect`` need the same variables set in both).

Rules implemented:
- ``sequence`` is ONE counter per connection over every channel and product. A jump cannot be
  attributed to a product: every book of the connection gets a ``gap`` (flagged ``unattributed``) and is
  resynced by ``UNSUBSCRIBE`` + ``SUBSCRIBE`` of ``LEVEL2`` for its products (Coinbase documents no
  REST book or replay for this feed). A repeated number is a ``duplicate`` (skipped); one that goes
  backwards is treated as a gap. Book rows carry ``sequence`` as ``seq``.
- ``LEVEL2``: ``SNAPSHOT`` with ``bids``/``asks`` ``[price, size]``, then ``UPDATE`` with ``changes``
  ``[side, price, size]``, ``side`` ``BUY``/``SELL``, size absolute ("0" removes). ``time`` is the
  exchange time. No checksum is documented.
- ``MATCH``: ``match_id`` (the trade id), ``trade_price``, ``trade_qty``, ``aggressor_side``
  (``BUY``/``SELL`` is the taker side; ``OPENING_FILL``, the auction's opening cross, has none: side
  null), ``time``. No snapshot; ids are de-duplicated all the same (resubscriptions).
- ``LEVEL1``: ``bid_price``/``bid_qty``/``ask_price``/``ask_qty`` (a side may be absent: one-sided book),
  one ``bbo`` row per message with ``seq`` = ``sequence``.
- ``FUNDING``: ``funding_rate`` with ``is_final``. A final rate (the first ``SNAPSHOT`` carries the last
  interval's) is the current rate; a non-final one is the predicted rate of the next interval, recorded
  as ``predicted_rate`` beside the last final rate (or beside itself when no final rate was seen yet on
  the connection). The interval itself is an ``INSTRUMENTS`` field (``funding_interval``, ns), not sent
  with the rate.
- ``RISK``: ``mark_price`` and ``index_price`` -> ``mark_price`` rows; ``open_interest`` (base units)
  -> ``open_interest`` rows.
- ``REJECT``/``ERROR`` messages become ``subscribe_error`` events.

Symbols: ``BTC-PERP`` (USDC-margined perpetual) -> ``BTC-USDC-PERP``; spot ``BTC-USDC`` stays.

Instruments: ``GET https://api.international.coinbase.com/api/v1/instruments`` (public: no key needed),
parsed in :mod:`.instruments` and served by the simulator.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from schemas import RecordBuffer

from ...base import ExchangeDialect, Normaliser, Subscription
from ...book import ASK, BID, ConnectionSequence, ResyncWatch, SymbolBooks, add_flags, parse_levels
from ...dedupe import RecentTradeIds
from ...events import (
    ParseError,
    check_int64,
    check_symbol,
    emit_event,
    frame_text_for_event,
    iso_to_ns,
    non_negative_size,
    positive_price,
)
from ...instruments import Instrument
from . import instruments as intx_instruments

if TYPE_CHECKING:
    import aiohttp

    from ...simulator import ExchangeSimulator, SimulatorConfig

EXCHANGE = "coinbase-international"
#: our channel -> INTX channel (``mark`` and ``open_interest`` both come from ``RISK``)
CHANNEL_NAMES = {
    "trades": "MATCH",
    "book": "LEVEL2",
    "bbo": "LEVEL1",
    "funding": "FUNDING",
    "mark": "RISK",
    "open_interest": "RISK",
}
L2_SIDES = {"BUY": BID, "SELL": ASK}
#: ``aggressor_side`` -> taker side; ``OPENING_FILL`` (auction cross) has no taker
TAKER_SIDE: dict[str, str | None] = {"BUY": "buy", "SELL": "sell", "OPENING_FILL": None}
#: what the signature's prehash names between key and passphrase (the market data service)
SIGNATURE_TARGET = "CBINTLMD"
ENV_PREFIX = "TICKTAPE_COINBASE_INTX_"


def normalise_product(native: Any) -> str:
    """``BTC-PERP`` -> ``BTC-USDC-PERP``; other products (spot ``BTC-USDC``) keep their id."""
    if not isinstance(native, str):
        raise ParseError(f"product id is not a string: {str(native)[:40]!r}")
    upper = native.upper()
    base, sep, tail = upper.partition("-")
    if sep and tail == "PERP" and base:
        return check_symbol(f"{base}-USDC-PERP")
    return check_symbol(upper)


def sign(time_s: str, key: str, passphrase: str, secret_b64: str) -> str:
    """The subscription signature: base64 HMAC-SHA256 of ``time + key + CBINTLMD + passphrase``."""
    try:
        secret = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{EXCHANGE}: the API secret is not base64") from None
    prehash = f"{time_s}{key}{SIGNATURE_TARGET}{passphrase}".encode()
    return base64.b64encode(hmac.new(secret, prehash, hashlib.sha256).digest()).decode()


class Credentials:
    """An INTX API key (its secret is never printed: ``repr`` shows the key only)."""

    __slots__ = ("key", "passphrase", "secret")

    def __init__(self, key: str, secret: str, passphrase: str) -> None:
        self.key = key
        self.secret = secret
        self.passphrase = passphrase

    def __repr__(self) -> str:
        return f"Credentials(key={self.key!r}, secret=<hidden>, passphrase=<hidden>)"

    def auth_fields(self, now_s: int | None = None) -> dict[str, str]:
        """The four authentication fields of one ``SUBSCRIBE`` message, signed now."""
        t = str(int(time.time()) if now_s is None else now_s)
        return {
            "time": t,
            "key": self.key,
            "passphrase": self.passphrase,
            "signature": sign(t, self.key, self.passphrase, self.secret),
        }


def _ts_or_none(value: Any) -> int | None:
    return None if value is None else iso_to_ns(value)


def _optional_price(value: Any, what: str) -> float | None:
    return None if value is None or value == "" else positive_price(value, what)


class CoinbaseInternationalNormaliser(ConnectionSequence, Normaliser):
    """INTX frames -> records (one instance per connection)."""

    exchange: ClassVar[str] = EXCHANGE
    sequence_field: ClassVar[str] = "sequence"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(EXCHANGE, normalise_product)
        self.books = self.symbols.books
        self.trade_ids = RecentTradeIds()
        self.last_seq: int | None = None
        self.sequence_gaps = 0
        self.resync_watch = ResyncWatch()
        #: last final funding rate per product on this connection
        self.final_rate: dict[str, float] = {}

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not a JSON object")
        kind = msg.get("type")
        channel = msg.get("channel")
        if kind in ("REJECT", "ERROR") or (kind is not None and channel is None):
            detail = {
                "type": str(kind)[:40],
                "message": str(msg.get("message"))[:300],
                "reason": str(msg.get("reason"))[:300],
                **frame_text_for_event(frame),
            }
            emit_event(out, self.exchange, None, "connection", ts_recv, "subscribe_error", detail)
            return
        if channel == "SUBSCRIPTIONS":
            return
        if kind not in ("SNAPSHOT", "UPDATE"):
            raise ParseError(f"unknown message type {str(kind)[:30]!r}")
        seq = msg.get("sequence")
        if seq is not None:
            # checked against int64 before the connection counter moves: 2**64 - 1 would become the
            # counter (every later message a gap) and a book row's seq beyond its column
            if check_int64(seq, "sequence") < 0:
                raise ParseError(f"sequence is not a non-negative integer: {str(seq)[:30]!r}")
            if not self.check_sequence(ts_recv, seq, out):
                return
        snapshot = kind == "SNAPSHOT"
        if channel == "LEVEL2":
            self.on_level2(ts_recv, msg, seq, snapshot, out)
        elif channel == "MATCH":
            self.on_match(ts_recv, msg, out)
        elif channel == "LEVEL1":
            self.on_level1(ts_recv, msg, seq, out)
        elif channel == "FUNDING":
            self.on_funding(ts_recv, msg, out)
        elif channel == "RISK":
            self.on_risk(ts_recv, msg, out)
        elif channel in ("INSTRUMENTS", "INDEX", "RFQ_MATCH") or (
            isinstance(channel, str) and channel.startswith("CANDLES_")
        ):
            return  # documented channels ticktape does not record
        else:
            raise ParseError(f"unknown channel {str(channel)[:40]!r}")

    def on_level2(
        self, ts_recv: int, msg: dict[str, Any], seq: int | None, snapshot: bool, out: RecordBuffer
    ) -> None:
        native = msg["product_id"]
        book = self.symbols.book(native)
        ts_exchange = iso_to_ns(msg["time"])
        if snapshot:
            bids, asks = msg["bids"], msg["asks"]
            if not isinstance(bids, list) or not isinstance(asks, list):
                raise ParseError("LEVEL2 snapshot bids/asks are not lists", book.symbol, "book")
            self.resubscribe_requests.discard(native)
            self.resync_watch.done(native)
            before = len(out.book)
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
            add_flags(out.book, before, self.time_flags.flags(ts_exchange, ts_recv))
            return
        changes = msg["changes"]
        if not isinstance(changes, list):
            raise ParseError("LEVEL2 changes is not a list", book.symbol, "book")
        try:
            sides = [L2_SIDES[c[0]] for c in changes]
            parsed = parse_levels((c[1], c[2]) for c in changes)
        except (KeyError, IndexError, TypeError):
            raise ParseError("LEVEL2 change is not [BUY|SELL, price, size]", book.symbol, "book") from None
        if not book.synced:
            self.resync_watch.check(
                out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests
            )
            return
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        before = len(out.book)
        for side in (BID, ASK):
            run = [p for p, s in zip(parsed, sides, strict=True) if s == side]
            if run:
                book.apply_parsed(out, ts_exchange, ts_recv, side, run, seq)
        add_flags(out.book, before, flags)
        book.check_crossed(out, ts_recv, {"sequence": seq})

    def on_match(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        native = msg["product_id"]
        symbol = self.symbols.name(native)
        trade_id = msg["match_id"]
        if isinstance(trade_id, bool) or not isinstance(trade_id, str | int) or not str(trade_id).isdigit():
            raise ParseError(f"match_id is not an id: {str(trade_id)[:40]!r}", symbol, "trades")
        tid = str(trade_id)
        aggressor = msg.get("aggressor_side")
        if aggressor not in TAKER_SIDE:
            raise ParseError(f"aggressor_side {str(aggressor)[:20]!r}", symbol, "trades")
        price = positive_price(msg["trade_price"], "trade_price")
        size = positive_price(msg["trade_qty"], "trade_qty")
        ts_exchange = iso_to_ns(msg["time"])
        if self.trade_ids.seen(native, tid):
            emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
            return
        self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, TAKER_SIDE[aggressor])

    def on_level1(self, ts_recv: int, msg: dict[str, Any], seq: int | None, out: RecordBuffer) -> None:
        symbol = self.symbols.name(msg["product_id"])
        ts_exchange = iso_to_ns(msg["time"])
        bid_p = _optional_price(msg.get("bid_price"), "bid_price")
        ask_p = _optional_price(msg.get("ask_price"), "ask_price")
        bid_s = None if bid_p is None else non_negative_size(msg["bid_qty"], "bid_qty")
        ask_s = None if ask_p is None else non_negative_size(msg["ask_qty"], "ask_qty")
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_p, bid_s, ask_p, ask_s, seq)

    def on_funding(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        native = msg["product_id"]
        symbol = self.symbols.name(native)
        ts_exchange = iso_to_ns(msg["time"])
        rate_text = msg["funding_rate"]
        if not isinstance(rate_text, str | int | float) or isinstance(rate_text, bool):
            raise ParseError("funding_rate is not a number", symbol, "funding")
        rate = float(rate_text)
        if not -1.0 < rate < 1.0:  # NaN fails too
            raise ParseError(f"funding_rate out of range: {str(rate_text)[:30]!r}", symbol, "funding")
        final = msg.get("is_final")
        if final is True:
            self.final_rate[native] = rate
            self.emit_funding(out, symbol, ts_exchange, ts_recv, rate)
        elif final is False:
            current = self.final_rate.get(native, rate)
            self.emit_funding(out, symbol, ts_exchange, ts_recv, current, predicted_rate=rate)
        else:
            raise ParseError("is_final is not a boolean", symbol, "funding")

    def on_risk(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        symbol = self.symbols.name(msg["product_id"])
        ts_exchange = iso_to_ns(msg["time"])
        mark = _optional_price(msg.get("mark_price"), "mark_price")
        index = _optional_price(msg.get("index_price"), "index_price")
        oi_text = msg.get("open_interest")
        oi = None if oi_text is None or oi_text == "" else non_negative_size(oi_text, "open_interest")
        if mark is None and oi is None:
            raise ParseError("RISK message without mark_price or open_interest", symbol, "mark")
        if mark is not None:
            self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
        if oi is not None:
            self.emit_open_interest(out, symbol, ts_exchange, ts_recv, oi)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new session restarts the sequence and sends new snapshots."""
        self.last_seq = None
        for book in self.books.values():
            book.reset()
        self.resubscribe_requests.clear()
        self.final_rate.clear()


class CoinbaseInternationalDialect(ExchangeDialect):
    """INTX: endpoint, authenticated subscriptions, LEVEL2 resubscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws-md.international.coinbase.com"
    default_rest_url: ClassVar[str | None] = None
    gap_scope: ClassVar[str] = "connection"
    channels: ClassVar[tuple[str, ...]] = ("trades", "book", "bbo", "funding", "mark", "open_interest")
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-PERP", "ETH-PERP")
    #: a sequence gap resyncs every book of its connection: connections stay modest
    max_streams_per_connection: ClassVar[int] = 100

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        key = os.environ.get(f"{ENV_PREFIX}API_KEY")
        secret = os.environ.get(f"{ENV_PREFIX}API_SECRET")
        passphrase = os.environ.get(f"{ENV_PREFIX}PASSPHRASE")
        self.credentials: Credentials | None = (
            Credentials(key, secret, passphrase) if key and secret and passphrase else None
        )

    def native_symbol(self, symbol: str) -> str:
        text = symbol.strip().upper().replace("/", "-")
        parts = text.split("-")
        if len(parts) == 3 and parts[2] == "PERP":
            return f"{parts[0]}-PERP"  # BTC-USDC-PERP -> BTC-PERP
        return text

    def normalise_symbol(self, native: str) -> str:
        return normalise_product(native)

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return ws_url

    async def prepare_connection(
        self, http: aiohttp.ClientSession, rest_url: str | None, ws_url: str, sub: Subscription
    ) -> str:
        if self.credentials is None:
            raise ValueError(
                f"{EXCHANGE}: market data needs an API key; set {ENV_PREFIX}API_KEY, {ENV_PREFIX}API_SECRET "
                f"and {ENV_PREFIX}PASSPHRASE"
            )
        self.credentials.auth_fields()  # a secret that is not base64 fails here, as a failed connect
        return self.connection_url(ws_url, sub)

    def _request(self, kind: str, channels: Sequence[str], products: Sequence[str]) -> str:
        msg: dict[str, Any] = {"type": kind, "product_ids": list(products), "channels": list(channels)}
        if kind == "SUBSCRIBE" and self.credentials is not None:
            msg.update(self.credentials.auth_fields())
        return orjson.dumps(msg).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        wire = list(dict.fromkeys(CHANNEL_NAMES[c] for c in sub.channels))
        return [self._request("SUBSCRIBE", wire, sub.symbols)]

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        products = list(native_symbols)
        return [
            self._request("UNSUBSCRIBE", ["LEVEL2"], products),
            self._request("SUBSCRIBE", ["LEVEL2"], products),
        ]

    def new_normaliser(self) -> Normaliser:
        return CoinbaseInternationalNormaliser()

    # -- instruments (.instruments): public REST, no API key ----------------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.international.coinbase.com"

    def instruments_paths(self) -> list[str]:
        return [intx_instruments.PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return intx_instruments.parse_instruments(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        if self.credentials is None:
            # The loopback venue issues a key, as INTX does on its website: the dialect signs with it.
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
            self.credentials = Credentials(secrets.token_hex(8), secret, secrets.token_hex(8))
        from .simulator import CoinbaseInternationalSimulator

        return CoinbaseInternationalSimulator(self, config, self.credentials)
