"""Bybit v5 spot (exchange id ``bybit-spot``): public websocket ``/v5/public/spot``.

Same protocol and book rules as :mod:`.common` and :mod:`.linear` (subclassed here, not copied): ``publicTrade``,
``orderbook.N`` snapshot/delta with ``u`` incrementing by one (``u == 1`` or a snapshot resets the
book), ``orderbook.1`` for the best bid/offer. What differs on spot, as documented:
- book depths 50, 200 and 1000 (level 1 is the bbo channel); level 1 is re-pushed as a snapshot after
  3 s without change, as on linear (the current orderbook page lists spot with the contracts);
- at most 10 args per subscribe request (Bybit rejects longer requests; ``limits`` declares it);
- spot ``tickers`` carry no best bid/offer, so ``orderbook.1`` is the only bbo source;
- trade ids are decimal strings and trades have no ``L`` (tick direction);
- symbols ``BTCUSDT`` normalise to ``BTC-USDT``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...base import CHANNELS
from ...pacing import VenueLimits
from ...simulator import ExchangeSimulator, MarketStep, SimulatorConfig
from .common import BybitNormaliser, split_quote
from .linear import BybitDialect
from .simulator import BybitSimulator

EXCHANGE = "bybit-spot"
#: Bybit spot rejects subscribe requests with more args than this
SPOT_ARGS_PER_REQUEST = 10

#: Quote assets of Bybit spot pairs, longest first (``USDE`` before ``USD``-like suffixes).
SPOT_QUOTES: tuple[str, ...] = tuple(
    sorted(
        ("USDT", "USDC", "USDE", "USDR", "FDUSD", "DAI", "EUR", "BRL", "TRY", "PLN", "BTC", "ETH", "MNT"),
        key=len,
        reverse=True,
    )
)


class BybitSpotNormaliser(BybitNormaliser):
    """Bybit v5 spot frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    quotes: ClassVar[tuple[str, ...]] = SPOT_QUOTES

    def normalise_native(self, native: str) -> str:
        """``BTCUSDT`` -> ``BTC-USDT``."""
        base, quote = split_quote(native, self.quotes)
        return f"{base}-{quote}"


class BybitSpotDialect(BybitDialect):
    """Bybit v5 spot: endpoint, limits, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    ws_path: ClassVar[str] = "/v5/public/spot"
    args_per_request: ClassVar[int] = SPOT_ARGS_PER_REQUEST
    #: 500 connections per 5 minutes per IP, and at most 10 args per subscribe request on spot
    limits: ClassVar[VenueLimits] = VenueLimits(
        connections_per_window=500, connection_window_s=300.0, subscriptions_per_message=SPOT_ARGS_PER_REQUEST
    )
    book_depths: ClassVar[tuple[int, ...]] = (50, 200, 1000)
    bbo_sources: ClassVar[tuple[str, ...]] = ("orderbook.1",)
    #: spot has no mark, funding, open interest or liquidations
    channels: ClassVar[tuple[str, ...]] = CHANNELS
    normaliser_class: ClassVar[type[BybitNormaliser]] = BybitSpotNormaliser
    instruments_category: ClassVar[str] = "spot"

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT``/``BTC/USDT``/``btcusdt`` -> ``BTCUSDT``."""
        return symbol.strip().upper().replace("/", "").replace("-", "")

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BybitSpotSimulator(self, config)


class BybitSpotSimulator(BybitSimulator):
    """Bybit v5 spot on loopback (``/v5/public/spot``)."""

    category: ClassVar[str] = "spot"

    def trade_id(self, trade_id: int) -> str:
        """Spot trade ids are decimal strings."""
        return str(2_290_000_000_000_000_000 + trade_id)

    def trade_item(self, step: MarketStep, t: Any, ms: int) -> dict[str, Any]:
        item = super().trade_item(step, t, ms)
        del item["L"]  # tick direction is a derivatives-only field
        return item


DIALECT_CLASS = BybitSpotDialect
