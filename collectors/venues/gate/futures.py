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
"""

from __future__ import annotations

from typing import Any, ClassVar

from schemas import RecordBuffer

from ...events import ParseError, positive_price
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


def signed_size(value: Any) -> float:
    """A signed contract size (integer, or decimal string since 2025-12): finite and non-zero."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ParseError(f"trade size is not a number: {str(value)[:40]!r}", channel="trades")
    try:
        x = float(value)
    except ValueError:
        raise ParseError(f"trade size is not a number: {str(value)[:40]!r}", channel="trades") from None
    if not (x != 0.0 and abs(x) < float("inf")):
        raise ParseError(f"trade size out of range: {str(value)[:40]!r}", channel="trades")
    return x


class GateFuturesNormaliser(GateNormaliser):
    """Gate USDT perpetual frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    prefix: ClassVar[str] = "futures"
    ignored_channels: ClassVar[frozenset[str]] = frozenset(
        {"futures.tickers", "futures.candlesticks", "futures.order_book", "futures.contract_stats"}
    )

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

    def book_payload(self, native: str) -> list[str]:
        return [native, BOOK_INTERVAL, str(SNAPSHOT_LIMIT)]

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return GateSimulator(self, config)

    # -- instruments (collectors/venues/htx_gate_instruments.py) ---------------------------------
    def instruments_paths(self) -> list[str]:
        return [htx_gate_instruments.GATE_FUTURES_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return htx_gate_instruments.parse_gate_contracts(self, body, ts_recv)


DIALECT_CLASS = GateFuturesDialect
