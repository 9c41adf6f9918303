"""Gate USDT-margined perpetual futures (exchange id ``gate-futures``): ``wss://fx-ws.gateio.ws/v4/ws/usdt``.

Documentation (checked 2026-12-05): https://www.gate.com/docs/developers/futures/ws/en/ (futures websocket
v4), https://www.gate.io/de/article/19776 (order book channels and local book procedure, naming the REST call
below) and https://www.gate.com/docs/developers/apiv4/en/ (REST API v4); the shared rules and the channel
choices are in :mod:`.common`.

Channels:
- ``futures.trades`` (payload: contract list): each push is a *list* of trades ``{size, id, create_time,
  create_time_ms, price, contract, is_internal}``. ``size`` is signed: negative = the taker sold,
  positive = the taker bought; the row holds its absolute value. ``create_time_ms`` is the exchange
  time. ``is_internal`` trades (insurance fund / ADL taking over a liquidation, off the book) are trades
  of the contract too and are recorded like the others.
- ``futures.order_book_update`` (payload ``[contract, "100ms", "100"]``): ``{t, full?, l, s, U, u, b, a}``
  with levels ``{"p": price, "s": size}``; size 0 removes the level.
- ``futures.book_ticker`` (payload: contract list): ``{t, u, s, b, B, a, A}``, ``u`` = the book's id.
- REST snapshot ``GET /api/v4/futures/usdt/order_book?contract=C&limit=100&with_id=true``:
  ``{id, current, update, asks: [{p, s}], bids: [{p, s}]}`` (``current``/``update`` in seconds with a
  fraction; ``update`` is used as the snapshot rows' exchange time).
- ``futures.ping`` every 20 s (answered ``futures.pong``).

Units: every size (trades, book, bbo) is a number of **contracts**, as Gate sends it; the lake holds
contracts. One contract is ``quanto_multiplier`` base units (``GET /api/v4/futures/usdt/contracts``: e.g.
0.0001 BTC for ``BTC_USDT``, 100 for ``SC_USDT`` in the 2023 recording); prices are in USDT per base unit.
Since 2025-12-09 contract sizes may be fractional: with the request header ``X-Gate-Size-Decimal: 1``
(sent by this dialect, :attr:`ws_headers`) sizes arrive as decimal strings; without it they arrive as
integers *rounded down*. Both forms are parsed.

Symbols ``BTC_USDT`` normalise to ``BTC-USDT-PERP``.

Derivatives channels (issue 15). Sources checked 2026-12-05 through the search tool: the futures
websocket page above (its zh_CN text as of 2026-08-20, seen through a public changelog mirror: the
``futures.public_liquidates`` section and changelog) and the ticker model of Gate's REST API v4
(https://www.gate.com/docs/developers/apiv4/en/#list-futures-tickers, field names as in the published
SDK types); the websocket ``futures.tickers`` section itself was not in the stored pages, so its
field names are the REST ticker's (which the websocket ticker documents as the same object):
- ``funding``, ``mark``, ``open_interest`` ride ``futures.tickers`` (payload: contract list; one
  subscription for all three). A push's ``result`` is a list of tickers ``{contract, last,
  mark_price, index_price, funding_rate, funding_rate_indicative, total_size, ...}`` (decimal
  strings). A ticker carries no time of its own: the push's ``time_ms`` is the exchange time of every
  row. ``mark_price`` (+ ``index_price``, null when absent or empty) gives a ``mark_price`` row;
  ``funding_rate`` (+ ``funding_rate_indicative`` as the predicted rate) a ``funding`` row, with no
  next funding time (the ticker has none; it is ``funding_next_apply`` in the REST contract list,
  not polled); ``total_size`` (open interest, in **contracts** like every Gate futures size) an
  ``open_interest`` row without a value. A field that is absent makes no row of its dataset.
- ``liquidations``: ``futures.public_liquidates`` (payload: contract list). ``result`` is a list of
  ``{price, size, time, contract}``; since 2026-08-20 one push lists every liquidation order of the
  contract in a 1 s window (at most 20), before that one order per contract per second. ``time`` is
  in milliseconds since that change and was in seconds in the older examples (some captures carry
  ``time_ms``): ``time_ms`` wins when present, else ``time`` below 10^11 is read as seconds, above as
  milliseconds. ``size`` is the liquidation *order's* size in contracts, signed like a trade's
  (negative = the order sells, so a long position was liquidated); the row stores its absolute value
  and the order's side. Confirmed 2026-12-05: the push parameters name ``size`` the liquidation
  order's quantity ("强平订单数量", zh_CN futures websocket page, text of 2026-08-20), and Gate signs
  an order's size positive for a bid and negative for an ask ("Order size. Specify positive number to
  make a bid, and negative number to ask": ``FuturesOrder.size`` of REST API v4,
  https://github.com/gateio/gateapi-python/blob/master/docs/FuturesOrder.md), so the sign is the
  order's, not the position's (the REST ``liq_orders`` model, whose ``size`` is a "position size", is
  another object). Gate gives no liquidation id (null).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import orjson

from schemas import RecordBuffer

from ...base import CHANNELS, Subscription
from ...events import ParseError, funding_rate, ms_to_ns, non_negative_size, positive_price
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from .. import htx_gate_instruments
from .common import (
    BOOK_INTERVAL,
    SNAPSHOT_LIMIT,
    GateDialect,
    GateNormaliser,
    seconds_to_ns,
    split_pair,
    trade_time_ns,
)
from .simulator import GateSimulator

EXCHANGE = "gate-futures"
#: the channel of mark, index, funding and open interest, and the liquidation channel
TICKERS = "futures.tickers"
LIQUIDATIONS = "futures.public_liquidates"
#: our channels that ride ``futures.tickers``
TICKER_CHANNELS: tuple[str, ...] = ("funding", "mark", "open_interest")
#: ``futures.public_liquidates`` ``time`` below this is in seconds (before 2026-08-20), else in ms
_SECONDS_BELOW = 10**11


def signed_size(value: Any, channel: str = "trades") -> float:
    """A signed contract size (integer, or decimal string since 2025-12): finite and non-zero."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ParseError(f"{channel} size is not a number: {str(value)[:40]!r}", channel=channel)
    try:
        x = float(value)
    except ValueError:
        raise ParseError(f"{channel} size is not a number: {str(value)[:40]!r}", channel=channel) from None
    if not (x != 0.0 and abs(x) < float("inf")):
        raise ParseError(f"{channel} size out of range: {str(value)[:40]!r}", channel=channel)
    return x


class GateFuturesNormaliser(GateNormaliser):
    """Gate USDT perpetual frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    prefix: ClassVar[str] = "futures"
    ignored_channels: ClassVar[frozenset[str]] = frozenset(
        {"futures.candlesticks", "futures.order_book", "futures.contract_stats"}
    )
    derivative_channels: ClassVar[frozenset[str]] = frozenset({TICKERS, LIQUIDATIONS})

    def normalise_native(self, native: Any) -> str:
        """``BTC_USDT`` -> ``BTC-USDT-PERP``."""
        base, quote = split_pair(native)
        return f"{base}-{quote}-PERP"

    def levels(self, raw: Any) -> list[Any]:
        """``[{"p": "54672.1", "s": 58794}]`` -> ``[("54672.1", 58794)]``."""
        if not isinstance(raw, list):
            raise ParseError("book levels are not a list", channel="book")
        out = []
        for level in raw:
            if not isinstance(level, dict):
                raise ParseError("book level is not an object {p, s}", channel="book")
            size = level["s"]
            if isinstance(size, bool):
                raise ParseError("book level size is a boolean", channel="book")
            out.append((level["p"], size))
        return out

    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        update = data.get("update")
        return None if update is None else seconds_to_ns(update)

    def on_trades(self, ts_recv: int, result: Any, out: RecordBuffer) -> None:
        """One ``futures.trades`` push: a list of trades, each validated before any row is written."""
        if not isinstance(result, list):
            raise ParseError("trades result is not a list", channel="trades")
        parsed = []
        for t in result:
            if not isinstance(t, dict):
                raise ParseError("trade is not an object", channel="trades")
            size = signed_size(t["size"])
            price = positive_price(t["price"])
            ts_exchange = trade_time_ns(t)
            parsed.append(
                (t["contract"], t["id"], price, abs(size), "sell" if size < 0 else "buy", ts_exchange)
            )
        for native, trade_id, price, size, side, ts_exchange in parsed:
            self.emit_gate_trade(out, ts_recv, native, trade_id, price, size, side, ts_exchange)

    # -- derivatives channels ---------------------------------------------------------------------
    def on_derivative(self, ts_recv: int, channel: str, msg: dict[str, Any], out: RecordBuffer) -> None:
        result = msg.get("result")
        if not isinstance(result, list):
            raise ParseError(f"{channel} result is not a list")
        if channel == TICKERS:
            self.on_tickers(ts_recv, msg, result, out)
        else:
            self.on_liquidates(ts_recv, result, out)

    def on_tickers(self, ts_recv: int, msg: dict[str, Any], result: list[Any], out: RecordBuffer) -> None:
        """A ``futures.tickers`` push: mark, funding and open interest rows per ticker (all validated
        before any row is written)."""
        ts_exchange = ms_to_ns(msg["time_ms"])
        rows = []
        for t in result:
            if not isinstance(t, dict):
                raise ParseError("ticker is not an object", channel="mark")
            symbol = self.books.name(t["contract"])
            mark = index = rate = predicted = oi = None
            if "mark_price" in t:
                mark = positive_price(t["mark_price"], "mark_price")
                raw_index = t.get("index_price")
                index = None if raw_index in (None, "") else positive_price(raw_index, "index_price")
            if "funding_rate" in t:
                rate = funding_rate(t["funding_rate"], symbol)
                raw_pred = t.get("funding_rate_indicative")
                predicted = (
                    None if raw_pred in (None, "") else funding_rate(raw_pred, symbol, "indicative rate")
                )
            if "total_size" in t:
                oi = non_negative_size(t["total_size"], "total_size")
            rows.append((symbol, mark, index, rate, predicted, oi))
        for symbol, mark, index, rate, predicted, oi in rows:
            if mark is not None:
                self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
            if rate is not None:
                self.emit_funding(out, symbol, ts_exchange, ts_recv, rate, predicted, None)
            if oi is not None:
                self.emit_open_interest(out, symbol, ts_exchange, ts_recv, oi, None)

    def on_liquidates(self, ts_recv: int, result: list[Any], out: RecordBuffer) -> None:
        """A ``futures.public_liquidates`` push: one ``liquidations`` row per order."""
        rows = []
        for item in result:
            if not isinstance(item, dict):
                raise ParseError("liquidation is not an object", channel="liquidations")
            symbol = self.books.name(item["contract"])
            size = signed_size(item["size"], "liquidations")
            price = positive_price(item["price"], "liquidation price")
            rows.append((symbol, liquidation_time_ns(item), "sell" if size < 0 else "buy", price, abs(size)))
        for symbol, ts_exchange, side, price, size in rows:
            self.emit_liquidation(out, symbol, ts_exchange, ts_recv, None, side, price, size)


def liquidation_time_ns(item: dict[str, Any]) -> int:
    """A liquidation's time: ``time_ms``, else ``time`` (ms since 2026-08-20, seconds before)."""
    if "time_ms" in item:
        return ms_to_ns(item["time_ms"])
    value = item["time"]
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < _SECONDS_BELOW:
        return value * 1_000_000_000
    return ms_to_ns(value)


class GateFuturesDialect(GateDialect):
    """Gate USDT perpetuals: endpoint, subscriptions, REST snapshot, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    prefix: ClassVar[str] = "futures"
    default_ws_url: ClassVar[str] = "wss://fx-ws.gateio.ws"
    ws_path: ClassVar[str] = "/v4/ws/usdt"
    snapshot_path: ClassVar[str] = "/api/v4/futures/usdt/order_book"
    snapshot_symbol_param: ClassVar[str] = "contract"
    app_ping: ClassVar[tuple[str, float] | None] = ('{"channel":"futures.ping"}', 20.0)
    #: decimal contract sizes as strings (without it Gate rounds fractional sizes down)
    ws_headers: ClassVar[dict[str, str] | None] = {"X-Gate-Size-Decimal": "1"}
    normaliser_class: ClassVar[type[GateNormaliser]] = GateFuturesNormaliser
    #: mark, funding and open interest from ``futures.tickers``, ``futures.public_liquidates``
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, *TICKER_CHANNELS, "liquidations")

    def book_payload(self, native: str) -> list[str]:
        return [native, BOOK_INTERVAL, str(SNAPSHOT_LIMIT)]

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        frames = super().subscribe_frames(sub)
        now = int(time.time())
        symbols = list(sub.symbols)
        extra = []
        if any(c in sub.channels for c in TICKER_CHANNELS):
            extra.append(TICKERS)
        if "liquidations" in sub.channels:
            extra.append(LIQUIDATIONS)
        for channel in extra:
            frame = {"time": now, "channel": channel, "event": "subscribe", "payload": symbols}
            frames.append(orjson.dumps(frame).decode())
        return frames

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return GateSimulator(self, config)

    # -- instruments (collectors/venues/htx_gate_instruments.py) ---------------------------------
    def instruments_paths(self) -> list[str]:
        return [htx_gate_instruments.GATE_FUTURES_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return htx_gate_instruments.parse_gate_contracts(self, body, ts_recv)


DIALECT_CLASS = GateFuturesDialect
