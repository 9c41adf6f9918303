"""Gate spot (exchange id ``gate``): websocket API v4 ``wss://api.gateio.ws/ws/v4/``.

Documentation (checked 2026-12-05): https://www.gate.com/docs/developers/apiv4/ws/en/ (spot websocket;
its local order book procedure names the REST call below) and https://www.gate.com/docs/developers/apiv4/en/
(REST API v4, base ``https://api.gateio.ws/api/v4``); the shared rules and the channel choices are in
:mod:`.common`.

Channels:
- ``spot.trades`` (payload: pair list): one push per trade, ``{id, create_time, create_time_ms, side,
  currency_pair, amount, price, range, id_market}``. Only the taker is notified, so ``side`` is the taker
  side. ``create_time_ms`` is a string with a fraction of a millisecond (``"1606292218213.4578"``): the
  exchange time keeps it to the nanosecond. ``id`` (per-venue trade id) is the trade id.
- ``spot.order_book_update`` (payload ``[pair, "100ms"]``): ``{t, full?, l, e, E, s, U, u, b, a}``, levels
  ``[price, amount]``; ``E`` (seconds) is deprecated, ``t`` (ms) is the exchange time.
- ``spot.book_ticker`` (payload: pair list, every 10 ms): best bid/offer with the book's ``u``.
- REST snapshot ``GET /api/v4/spot/order_book?currency_pair=P&limit=100&with_id=true``:
  ``{id, current, update, asks, bids}`` (``update``: ms of the book's last change, used as exchange time;
  older responses carry only ``id``, then the snapshot rows have a null exchange time).
- ``spot.ping`` every 20 s (answered ``spot.pong``); the server pings at the protocol level too.

Symbols ``BTC_USDT`` normalise to ``BTC-USDT``. Sizes are base-currency amounts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from schemas import RecordBuffer

from ...events import ParseError, ms_to_ns, positive_price
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from .. import spot_instruments
from .common import GateDialect, GateNormaliser, split_pair, trade_time_ns
from .simulator import GateSimulator

EXCHANGE = "gate"


class GateSpotNormaliser(GateNormaliser):
    """Gate spot frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    prefix: ClassVar[str] = "spot"
    ignored_channels: ClassVar[frozenset[str]] = frozenset(
        {"spot.tickers", "spot.candlesticks", "spot.order_book"}
    )
    alt_trade_channels: ClassVar[frozenset[str]] = frozenset({"spot.trades_v2"})

    def normalise_native(self, native: Any) -> str:
        """``BTC_USDT`` -> ``BTC-USDT``."""
        base, quote = split_pair(native)
        return f"{base}-{quote}"

    def levels(self, raw: Any) -> list[Any]:
        if not isinstance(raw, list):
            raise ParseError("book levels are not a list", channel="book")
        return raw

    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        update = data.get("update")
        if update is None:
            return None
        return ms_to_ns(update)

    def on_trades(self, ts_recv: int, result: Any, out: RecordBuffer) -> None:
        """One ``spot.trades`` push: one trade row."""
        if not isinstance(result, dict):
            raise ParseError("trade result is not an object", channel="trades")
        native = result["currency_pair"]
        side = result["side"]
        if side not in ("buy", "sell"):
            raise ParseError(f"trade side {str(side)[:20]!r}", channel="trades")
        price = positive_price(result["price"])
        size = positive_price(result["amount"], "amount")
        ts_exchange = trade_time_ns(result)
        self.emit_gate_trade(out, ts_recv, native, result["id"], price, size, side, ts_exchange)


class GateSpotDialect(GateDialect):
    """Gate spot: endpoint, subscriptions, REST snapshot, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    prefix: ClassVar[str] = "spot"
    default_ws_url: ClassVar[str] = "wss://api.gateio.ws"
    ws_path: ClassVar[str] = "/ws/v4/"
    snapshot_path: ClassVar[str] = "/api/v4/spot/order_book"
    snapshot_symbol_param: ClassVar[str] = "currency_pair"
    app_ping: ClassVar[tuple[str, float] | None] = ('{"channel":"spot.ping"}', 20.0)
    normaliser_class: ClassVar[type[GateNormaliser]] = GateSpotNormaliser

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return GateSimulator(self, config)

    # -- instruments (collectors/venues/spot_instruments.py) -------------------------------------
    def instruments_paths(self) -> list[str]:
        return [spot_instruments.GATE_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return spot_instruments.parse_gate(self, body, ts_recv)


DIALECT_CLASS = GateSpotDialect
