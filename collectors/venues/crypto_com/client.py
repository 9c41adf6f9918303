"""Crypto.com Exchange (exchange id ``crypto-com``): market websocket v1 ``wss://stream.crypto.com/exchange/v1/market``.

Documentation followed (checked 2026-12-05): https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html
(sections "Websocket Root Endpoints", "Websocket Heartbeats" (``public/respond-heartbeat``), "Rate Limits",
``book.{instrument_name}.{depth}``, ``trade.{instrument_name}``, ``ticker.{instrument_name}``, and the
"Breaking Change Schedule": since 2025-02-27 the 100 ms full-snapshot book is gone, the delta
subscription is the fast one).

Protocol:
- one request ``{"id":1,"method":"subscribe","params":{"channels":[...]},"nonce":<ms>}`` carries many
  channels; the documentation asks clients to wait one second after the connection opens before the
  first request (its request limits are counted from the connection's first second):
  ``subscribe_delay_s``. Limit: 100 requests per second per market-data connection
  (``request_interval_s`` paces re-subscriptions well inside it).
- the server sends ``{"id":<n>,"method":"public/heartbeat","code":0}`` every 30 s and closes the
  connection when it is not answered within 5 s by ``{"id":<n>,"method":"public/respond-heartbeat"}``
  with the same id (:attr:`Normaliser.replies`).
- pushes: ``{"id":-1,"method":"subscribe","code":0,"result":{"instrument_name","subscription",
  "channel","data":[...]}}``; a non-zero ``code`` is an error (a ``venue_error`` event).

Book (``book.{instrument}.{depth}``, depth 10 or 50, subscribed with ``"book_subscription_type":
"SNAPSHOT_AND_UPDATE"`` and ``"book_update_frequency":10``): the delta mode, chosen because it carries a
provable sequence. The first message (channel ``book``) is the whole book with ``u`` (update id); then
channel ``book.update`` messages carry ``update: {bids, asks}`` (changed levels, size 0 removes), ``u``
and ``pu`` (the ``u`` of the previous message of that book). Rule: ``pu == u`` of the last applied
message; ``u`` at or below it is a repeat (``duplicate``, ignored); anything else is a ``gap`` of that
instrument only: its book is cleared and its book channel re-subscribed (``unsubscribe`` then
``subscribe``) for a new snapshot, repeated every :data:`RESUBSCRIBE_AGAIN_AFTER` updates while it
does not come. A ``book`` message on a book already held is a whole book too (the snapshot-only mode,
and the retired v2 API, send nothing else): only what changed is emitted (``apply_full_book``). Levels
are ``[price, size, orders]``. ``t`` (ms) is ts_exchange, ``u`` the row's ``seq``. The updates also
carry ``cs``, a checksum whose algorithm is not documented: not verified (``book_checksum = False``).

Trades (``trade.{instrument}``): ``d`` trade id, ``p`` price, ``q`` size, ``s`` the taker side
(``BUY``/``SELL``), ``t`` trade time (ms). A subscription first sends recent trades again: they are
de-duplicated by ``d`` (``RecentTradeIds``), also across reconnects.

bbo (``ticker.{instrument}``): ``b``/``bs`` best bid and its size, ``k``/``ks`` best ask and its size
(null when a side is empty), ``t`` (ms); ``seq`` null (the ticker has no update id).

Reference data (the ``instruments`` dataset, ``all`` and globs): :mod:`.instruments`.

Instruments: spot ``BTC_USDT`` -> ``BTC-USDT``; perpetuals ``BTCUSD-PERP`` -> ``BTC-USD-PERP``. Exchange
v1 serves spot and derivatives on this one endpoint with the same channels and message shapes (the
derivatives API was merged into it), so both are this exchange id, as the venue itself presents them;
dated futures (``BTCUSD-251226``) keep Crypto.com's name. The demo symbols are perpetuals so that it shows
every channel; spot pairs carry trades, book and bbo.

Derivatives channels (subscribed for derivatives only; each message is one ``{v, t}`` value):
- ``funding``: ``funding.{instrument}`` (the current rate, a fraction) is a ``funding`` row, with the
  latest ``estimatedfunding.{instrument}`` value before it as ``predicted_rate`` (no next funding time
  is sent). Its ``t`` names the funding interval (a whole hour), not the publication: the row's
  ``ts_exchange`` is null, so the quality layer does not read an hour-old interval as stale data;
- ``mark``: ``mark.{instrument}`` is a ``mark_price`` row, with the latest ``index.{BASEQUOTE}-INDEX``
  value before it (``BTCUSD-PERP`` -> ``BTCUSD-INDEX``) as ``index_price``;
- ``open_interest``: the ticker's ``oi`` (as the venue sends it; spot tickers report 0 and give no row).
Crypto.com publishes no public liquidation stream.

The shared recording (2021-11-23) is of the retired ``v2/market`` API: the same envelope, heartbeat and
channel names, but every ``book`` message is the whole book (no ``u``/``pu``; read with the full-book
rule above), prices and sizes are JSON numbers, trade ids are integers, and the ticker has no sizes.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from schemas import RecordBuffer

from ...base import CHANNELS, ExchangeDialect, Normaliser, Subscription
from ...book import ResyncWatch, SymbolBooks, parse_levels
from ...dedupe import RecentTradeIds
from ...events import (
    ParseError,
    check_symbol,
    emit_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from . import instruments as crypto_com_instruments

EXCHANGE = "crypto-com"
WS_PATH = "/exchange/v1/market"
#: Book depths the venue offers for ``book.{instrument}.{depth}``.
BOOK_DEPTHS = (10, 50)
DEFAULT_BOOK_DEPTH = 50
#: Updates of a book still waiting for its snapshot after a re-subscribe before asking again.
RESUBSCRIBE_AGAIN_AFTER = 200
#: Perpetual suffix, and the settlement currencies of Crypto.com's perpetual names (``BTCUSD-PERP``).
PERP_SUFFIX = "-PERP"
PERP_QUOTES = ("USDT", "USD")
_TAKER_SIDE = {"BUY": "buy", "SELL": "sell"}
#: Channels of the venue that carry none of our datasets (a subscription made by another client
#: of the same connection, or a recording): passed over, not parse errors.
IGNORED_CHANNELS = frozenset({"candlestick", "settlement"})
#: Channels whose messages are one ``{v, t}`` value (derivatives).
_VALUE_CHANNELS = frozenset({"funding", "estimatedfunding", "mark", "index"})
INDEX_SUFFIX = "-INDEX"


def normalise_instrument(name: Any) -> str:
    """``BTC_USDT`` -> ``BTC-USDT``, ``BTCUSD-PERP`` -> ``BTC-USD-PERP``, dated futures unchanged."""
    if not isinstance(name, str) or not name or name != name.upper():
        raise ParseError(f"not an instrument name: {str(name)[:40]!r}")
    if "_" in name:
        base, _, quote = name.partition("_")
        if not base or not quote or "_" in quote:
            raise ParseError(f"not a spot pair: {name[:40]!r}")
        return f"{base}-{quote}"
    if name.endswith(PERP_SUFFIX):
        pair = name[: -len(PERP_SUFFIX)]
        for quote in PERP_QUOTES:
            if pair.endswith(quote) and len(pair) > len(quote):
                return f"{pair[: -len(quote)]}-{quote}{PERP_SUFFIX}"
        raise ParseError(f"unknown perpetual {name[:40]!r}")
    return name


def _int(value: Any, what: str, symbol: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    raise ParseError(f"bad {what} {str(value)[:40]!r}", symbol, "book")


class CryptoComNormaliser(Normaliser):
    """Crypto.com Exchange v1 (and retired v2) market frames -> records."""

    exchange: ClassVar[str] = EXCHANGE

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.symbols = SymbolBooks(self.exchange, normalise_instrument)
        self.trade_ids = RecentTradeIds()
        #: instruments with a re-subscribe in flight
        self.awaiting: set[str] = set()
        self.watch = ResyncWatch(RESUBSCRIBE_AGAIN_AFTER)
        #: updates dropped because their book had no snapshot on this connection
        self.dropped_unsynced = 0
        #: latest index price per index name, and estimated funding rate per instrument
        self.index_price: dict[str, float] = {}
        self.predicted_rate: dict[str, float] = {}

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        msg = orjson.loads(frame)
        if not isinstance(msg, dict):
            raise ParseError("frame is not an object")
        method = msg.get("method")
        if method == "public/heartbeat":
            hb_id = msg.get("id")
            if not isinstance(hb_id, int) or isinstance(hb_id, bool):
                raise ParseError(f"heartbeat without an integer id: {str(hb_id)[:40]!r}")
            self.replies.append(f'{{"id":{hb_id},"method":"public/respond-heartbeat"}}')
            return
        code = msg.get("code", 0)
        if code != 0:
            detail = {
                "code": str(code)[:40],
                "method": str(method)[:60],
                "message": str(msg.get("message"))[:300],
            }
            emit_event(out, self.exchange, None, "connection", ts_recv, "venue_error", detail)
            return
        result = msg.get("result")
        if method not in ("subscribe", "unsubscribe"):
            raise ParseError(f"unknown method {str(method)[:40]!r}")
        if result is None:
            return  # the acknowledgement of a request
        if not isinstance(result, dict):
            raise ParseError("result is not an object")
        channel = result.get("channel")
        data = result.get("data")
        if not isinstance(data, list):
            raise ParseError(f"{str(channel)[:40]} data is not a list")
        native = result.get("instrument_name")
        if channel == "trade":
            self.on_trades(ts_recv, native, data, out)
        elif channel == "book":
            self.on_book(ts_recv, native, data, out)
        elif channel == "book.update":
            self.on_update(ts_recv, native, data, out)
        elif channel == "ticker":
            self.on_ticker(ts_recv, native, data, out)
        elif channel in _VALUE_CHANNELS:
            self.on_value(ts_recv, channel, native, data, out)
        elif channel in IGNORED_CHANNELS:
            return
        else:
            raise ParseError(f"unknown channel {str(channel)[:40]!r}")

    def on_trades(self, ts_recv: int, native: Any, data: list[Any], out: RecordBuffer) -> None:
        """One row per trade (all validated first); repeats (by ``d``) dropped."""
        symbol = self.symbols.name(native)
        parsed = []
        for t in data:
            if not isinstance(t, dict):
                raise ParseError("trade is not an object", symbol, "trades")
            if t.get("i", native) != native:
                raise ParseError(f"trade of {str(t.get('i'))[:40]!r} in {native}'s channel", symbol, "trades")
            tid = t["d"]
            if isinstance(tid, int) and not isinstance(tid, bool) and tid >= 0:
                tid = str(tid)
            if not isinstance(tid, str) or not tid.isdigit() or len(tid) > 40:
                raise ParseError(f"bad trade id {str(tid)[:40]!r}", symbol, "trades")
            side = _TAKER_SIDE.get(t["s"]) if isinstance(t["s"], str) else None
            if side is None:
                raise ParseError(f"unknown trade side {str(t['s'])[:20]!r}", symbol, "trades")
            price = positive_price(t["p"])
            size = positive_price(t["q"], "size")
            parsed.append((tid, price, size, side, ms_to_ns(t["t"])))
        for tid, price, size, side, ts_exchange in parsed:
            if self.trade_ids.seen(native, tid):
                emit_event(out, self.exchange, symbol, "trades", ts_recv, "duplicate", {"trade_id": tid})
                continue
            self.emit_trade(out, symbol, ts_exchange, ts_recv, tid, price, size, side)

    def on_book(self, ts_recv: int, native: Any, data: list[Any], out: RecordBuffer) -> None:
        """A whole book: the snapshot of a chain of updates, or (held book) the changes it shows."""
        book = self.symbols.book(native)
        entry = _one(data, book.symbol)
        bids, asks = entry["bids"], entry["asks"]
        if not isinstance(bids, list) or not isinstance(asks, list):
            raise ParseError("book bids/asks are not lists", book.symbol, "book")
        seq = _int(entry["u"], "update id", book.symbol) if "u" in entry else None
        ts_exchange = ms_to_ns(entry["t"])
        if book.synced:
            flags = self.time_flags.flags(ts_exchange, ts_recv)
            book.apply_full_book(out, ts_exchange, ts_recv, bids, asks, seq, flags)
        else:
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, seq)
            self.awaiting.discard(native)
            self.watch.done(native)
        book.check_crossed(out, ts_recv, {"u": seq})

    def on_update(self, ts_recv: int, native: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ``book.update``: applied when ``pu`` is the last ``u``; else a repeat or a gap."""
        book = self.symbols.book(native)
        entry = _one(data, book.symbol)
        update = entry["update"]
        if not isinstance(update, dict):
            raise ParseError("book.update has no update object", book.symbol, "book")
        bids, asks = update.get("bids") or [], update.get("asks") or []
        u = _int(entry["u"], "update id", book.symbol)
        pu = _int(entry["pu"], "previous update id", book.symbol)
        ts_exchange = ms_to_ns(entry["t"])
        if not book.synced:
            parse_levels(bids)  # a malformed update is still a parse error
            parse_levels(asks)
            self.dropped_unsynced += 1
            if native in self.awaiting:
                self.watch.check(out, self.exchange, native, book.symbol, ts_recv, self.resubscribe_requests)
            else:
                self.request(native)
            return
        last = book.last_seq
        if last is None:
            # a held book without update ids (the v2 whole-book stream) has no chain to continue
            raise ParseError("book.update on a book without update ids", book.symbol, "book")
        if pu == last and u > last:
            flags = self.time_flags.flags(ts_exchange, ts_recv)
            book.apply_update(out, ts_exchange, ts_recv, bids, asks, u, flags)
            book.last_seq = u
            book.check_crossed(out, ts_recv, {"u": u})
        elif u <= last:
            parse_levels(bids)
            parse_levels(asks)
            emit_event(
                out,
                self.exchange,
                book.symbol,
                "book",
                ts_recv,
                "duplicate",
                {"u": u, "pu": pu, "last": last},
            )
        else:
            parse_levels(bids)  # a malformed update is a parse error, not a gap
            parse_levels(asks)
            book.gap(out, ts_recv, "gap", {"expected_pu": last, "pu": pu, "u": u})
            self.request(native)

    def on_ticker(self, ts_recv: int, native: Any, data: list[Any], out: RecordBuffer) -> None:
        """A ticker: its best bid and ask (with sizes where sent) are one bbo row."""
        symbol = self.symbols.name(native)
        entry = _one(data, symbol)
        quote: list[float | None] = []
        for price_key, size_key in (("b", "bs"), ("k", "ks")):
            price = entry.get(price_key)
            if price is None:
                quote += [None, None]
                continue
            size = entry.get(size_key)
            quote += [positive_price(price), non_negative_size(size) if size is not None else None]
        ts_exchange = ms_to_ns(entry["t"])
        oi = entry.get("oi")
        open_interest = None
        if oi is not None and is_derivative(native):  # spot tickers report 0
            open_interest = non_negative_size(oi, "open interest")
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, quote[0], quote[1], quote[2], quote[3], None)
        if open_interest is not None:
            self.emit_open_interest(out, symbol, ts_exchange, ts_recv, open_interest)

    def on_value(self, ts_recv: int, channel: str, native: Any, data: list[Any], out: RecordBuffer) -> None:
        """``funding``/``estimatedfunding``/``mark``/``index``: one ``{v, t}`` value of an instrument."""
        if channel == "index":
            if not isinstance(native, str) or not native.endswith(INDEX_SUFFIX):
                raise ParseError(f"not an index name: {str(native)[:40]!r}", channel="mark")
            entry = _one(data, native)
            self.index_price[native] = positive_price(entry["v"], "index price")
            return
        symbol = self.symbols.name(native)
        if not is_derivative(native):
            raise ParseError(
                f"{channel} of a spot pair", symbol, "funding" if "funding" in channel else "mark"
            )
        entry = _one(data, symbol)
        ts_exchange = ms_to_ns(entry["t"])
        if channel == "mark":
            mark = positive_price(entry["v"], "mark price")
            index = self.index_price.get(index_name(native))
            self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
            return
        rate = funding_rate(entry["v"], symbol)
        if channel == "estimatedfunding":
            self.predicted_rate[native] = rate
            return
        # A funding value's ``t`` is the funding interval it belongs to (a whole hour in the documented
        # example), not when it was published: it is no event time, so the row has none.
        self.emit_funding(out, symbol, None, ts_recv, rate, self.predicted_rate.get(native))

    def request(self, native: str) -> None:
        """Asks the connection to re-subscribe ``native``'s book (once while one is in flight)."""
        if native not in self.awaiting:
            self.awaiting.add(native)
            self.resubscribe_requests.add(native)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """A new connection subscribes again: every book starts from a new snapshot."""
        for book in self.symbols.books.values():
            book.reset()
        self.awaiting.clear()
        self.resubscribe_requests.clear()
        self.watch.waiting.clear()


def is_derivative(native: Any) -> bool:
    """True for perpetuals and dated futures (no ``_`` in the name), False for spot pairs."""
    return isinstance(native, str) and "_" not in native


def index_name(native: str) -> str:
    """The index of a derivative: ``BTCUSD-PERP`` -> ``BTCUSD-INDEX``."""
    return native.split("-", 1)[0] + INDEX_SUFFIX


def _one(data: list[Any], symbol: str) -> dict[str, Any]:
    """The one entry of a book or ticker message."""
    if len(data) != 1 or not isinstance(data[0], dict):
        raise ParseError(f"expected one entry, got {len(data)}", symbol, "book")
    entry: dict[str, Any] = data[0]
    return entry


class CryptoComDialect(ExchangeDialect):
    """Crypto.com Exchange v1 market data: endpoint, subscriptions, heartbeat replies, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://stream.crypto.com"
    default_rest_url: ClassVar[str | None] = "https://api.crypto.com"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest")
    #: perpetuals, so that the demo shows every channel (spot pairs carry trades, book and bbo)
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTCUSD-PERP", "ETHUSD-PERP")
    #: documented: wait one second after connecting before sending requests
    subscribe_delay_s: ClassVar[float] = 1.0
    #: 100 requests per second per market-data connection: re-subscriptions paced at 20 per second
    request_interval_s: ClassVar[float] = 0.05
    #: channels per connection; one subscribe request carries them all
    max_streams_per_connection: ClassVar[int] = 200

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        depth = self.options.book_depth or DEFAULT_BOOK_DEPTH
        if depth not in BOOK_DEPTHS:
            raise ValueError(f"crypto-com book depth must be one of {BOOK_DEPTHS}, not {depth}")
        self.book_depth = depth
        self._ids = itertools.count(1)

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT`` -> ``BTC_USDT``; ``BTC-USD-PERP`` -> ``BTCUSD-PERP``; native names unchanged."""
        text = symbol.strip().upper().replace("/", "-")
        if text.endswith(PERP_SUFFIX) and text.count("-") == 2:
            return text[: -len(PERP_SUFFIX)].replace("-", "") + PERP_SUFFIX
        if text.count("-") == 1 and not text.endswith(PERP_SUFFIX) and not text.split("-")[1].isdigit():
            return text.replace("-", "_")
        return text

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_instrument(native))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        return base if base.endswith(WS_PATH) else base + WS_PATH

    def channel_names(self, native: str, channels: Sequence[str]) -> list[str]:
        """The venue's channels for ours (derivatives channels only for derivatives; no repeats)."""
        names: dict[str, tuple[str, ...]] = {
            "trades": (f"trade.{native}",),
            "book": (f"book.{native}.{self.book_depth}",),
            "bbo": (f"ticker.{native}",),
        }
        if is_derivative(native):
            names["funding"] = (f"funding.{native}", f"estimatedfunding.{native}")
            names["mark"] = (f"mark.{native}", f"index.{index_name(native)}")
            names["open_interest"] = (f"ticker.{native}",)
        out: list[str] = []
        for channel in channels:
            out.extend(n for n in names.get(channel, ()) if n not in out)
        return out

    def request_frame(self, method: str, channels: list[str]) -> str:
        params: dict[str, Any] = {"channels": channels}
        if any(c.startswith("book.") for c in channels):
            params["book_subscription_type"] = "SNAPSHOT_AND_UPDATE"
            params["book_update_frequency"] = 10
        msg = {
            "id": next(self._ids),
            "method": method,
            "params": params,
            "nonce": time.time_ns() // 1_000_000,
        }
        return orjson.dumps(msg).decode()

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        channels = [c for n in sub.symbols for c in self.channel_names(n, sub.channels)]
        return [self.request_frame("subscribe", channels)] if channels else []

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """``unsubscribe`` then ``subscribe`` of the books: a subscription starts with a snapshot."""
        if "book" not in sub.channels or not native_symbols:
            return []
        channels = [self.channel_names(n, ("book",))[0] for n in native_symbols]
        return [self.request_frame("unsubscribe", channels), self.request_frame("subscribe", channels)]

    def new_normaliser(self) -> Normaliser:
        return CryptoComNormaliser()

    # -- instruments (collectors/venues/crypto_com/instruments.py) --------------------------------
    def instruments_paths(self) -> list[str]:
        return [crypto_com_instruments.PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return crypto_com_instruments.parse_get_instruments(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import CryptoComSimulator

        return CryptoComSimulator(self, config)


DIALECT_CLASS = CryptoComDialect
