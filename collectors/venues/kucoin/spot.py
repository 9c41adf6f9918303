"""KuCoin spot (exchange id ``kucoin``): classic spot websocket, public topics.

Documentation followed (checked 2026-12-05):
- https://www.kucoin.com/docs-new/3470068w0 (``/market/level2`` Orderbook - Increment, calibration)
- https://www.kucoin.com/docs-new/3470072w0 (``/market/match`` Trade)
- https://www.kucoin.com/docs-new/3470063w0 (``/market/ticker`` Ticker; its example spells the time ``Time``)
- https://www.kucoin.com/docs-new/api-3470165 (GET ``/api/v1/market/orderbook/level2_100``, public)
- https://www.kucoin.com/docs-new/api-3470164 (GET ``/api/v3/market/orderbook/level2``, the full book,
  now needs an API key: not used)
plus the shared rules in :mod:`collectors.venues.kucoin.client`.

Topics (up to 100 symbols each, ``/prefix:SYM1,SYM2``):
- ``/market/match`` (subject ``trade.l3match``): ``{symbol, tradeId, price, size, side, time, sequence,
  makerOrderId, takerOrderId, type}``; ``side`` is the taker's side, ``time`` a nanosecond string.
  Trade ids are de-duplicated per symbol.
- ``/market/level2`` (``trade.l2update``): ``{symbol, sequenceStart, sequenceEnd, time (ms), changes:
  {asks: [[price, size, sequence]], bids: [...]}}``; size 0 removes a level, price 0 only advances the
  sequence. Synced with the REST snapshot ``level2_100`` (``{time, sequence, bids, asks}``): the public
  snapshot has the best 100 levels per side, so deeper levels appear only once they change; the top of
  the book is exact. Without a key the full-depth snapshot is not available.
- ``/market/ticker`` (``trade.ticker``) for the best bid/offer: ``{sequence, bestBid, bestBidSize,
  bestAsk, bestAskSize, price, size, time (ms)}``; ``sequence`` is the book's sequence, so its rows are
  comparable with the rebuilt book at an equal ``seq``.

Symbols are KuCoin's own ``BASE-QUOTE`` (``BTC-USDT``), which is also the normalised form.

Differences from the 2021 recording (``../shared/samples/kucoin``): its ``trade.l2update`` messages have
no ``time`` (their rows get a null ``ts_exchange``, never a back-filled one), its REST snapshots came
from ``/api/v3/market/orderbook/level2`` (full depth, public then), and its trade ids are hex strings
(current ids are decimal strings); the message shapes are otherwise those documented today.
"""

from __future__ import annotations

from typing import Any, ClassVar

from schemas import RecordBuffer

from ...base import Normaliser
from ...book import ASK, BID
from ...events import ParseError, bbo_side, check_symbol, ms_to_ns, positive_price
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from .. import spot_instruments
from .client import (
    Increment,
    KucoinDialect,
    KucoinNormaliser,
    ns_time,
    parse_change,
    parse_sequence,
    taker_side,
)

EXCHANGE = "kucoin"
SNAPSHOT_TOPIC = "/market/level2Snapshot"


class KucoinSpotNormaliser(KucoinNormaliser):
    """KuCoin spot frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    snapshot_topic: ClassVar[str] = SNAPSHOT_TOPIC

    def normalise_native(self, native: Any) -> str:
        if not isinstance(native, str):
            raise ParseError(f"symbol is not a string: {str(native)[:40]!r}")
        return native

    def on_data(
        self, ts_recv: int, prefix: str, native: str, data: dict[str, Any], out: RecordBuffer, subject: Any
    ) -> None:
        if prefix == "/market/level2":
            self.on_level2(ts_recv, native, data, out)
        elif prefix == "/market/match":
            self.on_match(ts_recv, native, data, out)
        elif prefix == "/market/ticker":
            self.on_ticker(ts_recv, native, data, out)
        else:
            raise ParseError(f"unknown topic {prefix[:60]!r}")

    def on_match(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``/market/match`` message: one trade."""
        price = positive_price(data["price"])
        size = positive_price(data["size"], "size")
        side = taker_side(data.get("side"))
        ts_exchange = ns_time(data["time"], "trade time")
        self.trade(out, native, ts_exchange, ts_recv, data["tradeId"], price, size, side)

    def on_ticker(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``/market/ticker`` message: one bbo row at the book's sequence."""
        symbol = self.symbols.name(native)
        seq = parse_sequence(data["sequence"])
        bid_price, bid_size = bbo_side(data["bestBid"], data["bestBidSize"], "bid")
        ask_price, ask_size = bbo_side(data["bestAsk"], data["bestAskSize"], "ask")
        ts = data.get("time", data.get("Time"))
        ts_exchange = ms_to_ns(ts) if ts is not None else None
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_price, bid_size, ask_price, ask_size, seq)

    def on_level2(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``/market/level2`` increment, validated whole before it is buffered or applied."""
        symbol = self.symbols.name(native)
        if data.get("symbol", native) != native:
            raise ParseError("level2 symbol differs from its topic", symbol, "book")
        start = parse_sequence(data["sequenceStart"], "sequenceStart")
        end = parse_sequence(data["sequenceEnd"], "sequenceEnd")
        if start > end + 1:
            raise ParseError(f"sequence range {start}..{end} is not valid", symbol, "book")
        changes_obj = data["changes"]
        if not isinstance(changes_obj, dict):
            raise ParseError("level2 changes is not an object", symbol, "book")
        changes = []
        for side, key in ((BID, "bids"), (ASK, "asks")):
            levels = changes_obj.get(key, [])
            if not isinstance(levels, list):
                raise ParseError(f"level2 {key} is not a list", symbol, "book")
            for level in levels:
                if not isinstance(level, list) or len(level) < 3:
                    raise ParseError("level2 change is not [price, size, sequence]", symbol, "book")
                changes.append(
                    parse_change(parse_sequence(level[2], "change sequence"), side, level[0], level[1])
                )
        ts = data.get("time")
        ts_exchange = ms_to_ns(ts) if ts is not None else None
        self.on_increment(ts_recv, native, Increment(start, end, ts_exchange, changes), out)

    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        ts = data.get("time")
        return ms_to_ns(ts) if ts is not None else None


class KucoinSpotDialect(KucoinDialect):
    """KuCoin spot: endpoints, token flow, subscriptions, snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws-api-spot.kucoin.com"
    default_rest_url: ClassVar[str | None] = "https://api.kucoin.com"
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-USDT", "ETH-USDT")
    topics: ClassVar[dict[str, str]] = {
        "trades": "/market/match",
        "book": "/market/level2",
        "bbo": "/market/ticker",
    }
    snapshot_path: ClassVar[str] = "/api/v1/market/orderbook/level2_100"
    snapshot_topic: ClassVar[str] = SNAPSHOT_TOPIC
    #: request weight of level2_100 (Public pool)
    snapshot_weight: ClassVar[int] = 2

    def native_symbol(self, symbol: str) -> str:
        native = symbol.strip().upper().replace("/", "-").replace("_", "-")
        if native.count("-") != 1 or native.startswith("-") or native.endswith("-"):
            raise ValueError(f"kucoin symbols are BASE-QUOTE (e.g. BTC-USDT), not {symbol!r}")
        return native

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(self.native_symbol(native))

    def new_normaliser(self) -> Normaliser:
        return KucoinSpotNormaliser()

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import KucoinSpotSimulator

        return KucoinSpotSimulator(self, config)

    # -- instruments (collectors/venues/spot_instruments.py) -------------------------------------
    def instruments_paths(self) -> list[str]:
        return [spot_instruments.KUCOIN_PATH]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return spot_instruments.parse_kucoin(self, body, ts_recv)
