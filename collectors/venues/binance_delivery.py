"""Binance COIN-M futures (exchange id ``binance-delivery``): ``dstream`` combined streams + REST snapshot.

COIN-M speaks the USD-M dialect (:mod:`collectors.venues.binance_futures`, subclassed here, not
copied): ``<sym>@trade``, ``<sym>@depth@100ms`` (``@0ms``/``@500ms`` parse the same), ``<sym>@bookTicker``
on one combined ``/stream?streams=`` connection, and the same book rule, as Binance documents it for
COIN-M: buffer events, fetch ``GET /dapi/v1/depth?limit=1000``, drop events with ``u < lastUpdateId``,
the first applied event must have ``U <= lastUpdateId <= u``, then each event's ``pu`` equals the
previous event's ``u``. COIN-M is not part of the 2026 USD-M routing by category: ``dstream`` keeps
its unrouted ``/stream`` and ``/ws`` paths.

Derivatives channels as on USD-M (same streams, on the one unrouted connection): ``<sym>@markPrice@1s``
(mark, index, funding for ``_PERP``; dated contracts send ``r: ""``, no funding row), ``<sym>@forceOrder``
(liquidations; ``o.ps`` is the pair), open interest polled over REST at ``GET /dapi/v1/openInterest``
(answer ``{symbol, pair, openInterest, contractType, time}``, open interest in contracts) as generated
``<sym>@openInterest`` frames. Checked 2026-12-05:
- https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams/Mark-Price-Stream
- https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams/Liquidation-Order-Streams
- https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/Open-Interest
  (confirmed 2026-12-05 from a stored copy: ``GET /dapi/v1/openInterest``, request weight 1, answer
  ``{"symbol": "BTCUSD_200626", "pair": "BTCUSD", "openInterest": "15004", "contractType":
  "CURRENT_QUARTER", "time": 1591261042378}``; that example is a test)

What differs from USD-M:
- endpoints ``wss://dstream.binance.com`` and ``https://dapi.binance.com``;
- symbols: perpetuals are ``ETHUSD_PERP`` (normalised ``ETH-USD-PERP``), quarterly contracts
  ``BTCUSD_241227`` keep Binance's name, as DESIGN.md requires for dated futures;
- sizes (``q`` of trades, book and bbo quantities) are **numbers of contracts**, each worth a fixed
  amount of USD (100 USD for BTC, 10 USD for the others); the lake stores them as sent;
- events carry ``ps`` (the pair) beside ``s``.

Sources, checked 2026-12-05:
- https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
- https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
  (the same rule; USD-M's routing change does not name ``dstream``)

Checked against the shared recording ``binance-delivery/ethusd_perp_20240808`` (``@depth@0ms`` with
``pu``, ``@bookTicker`` with ``E``/``T``, ``@trade`` with ``X=MARKET``): the rebuilt book equals
``@bookTicker`` at every equal update id and no gap is reported.
"""

from __future__ import annotations

from typing import ClassVar

from ..events import ParseError
from ..simulator import ExchangeSimulator, SimulatorConfig
from .binance import BinanceFamilyNormaliser
from .binance_futures import BinanceFuturesDialect, BinanceFuturesNormaliser, BinanceFuturesSimulator

EXCHANGE = "binance-delivery"
PERP_SUFFIX = "_PERP"


class BinanceDeliveryNormaliser(BinanceFuturesNormaliser):
    """Binance COIN-M frames -> records (USD-M's ``pu`` chain book sync)."""

    exchange: ClassVar[str] = EXCHANGE
    frame_scan_rule: ClassVar[str | None] = "futures"

    def normalise_native(self, native: str) -> str:
        """``ETHUSD_PERP`` -> ``ETH-USD-PERP``; dated contracts (``BTCUSD_241227``) keep their name."""
        upper = native.upper()
        if upper.endswith(PERP_SUFFIX):
            pair = upper[: -len(PERP_SUFFIX)]
            if not pair.endswith("USD") or len(pair) <= 3:
                raise ParseError(f"unexpected COIN-M perpetual {native[:40]!r}")
            return f"{pair[:-3]}-USD-PERP"
        return upper


class BinanceDeliveryDialect(BinanceFuturesDialect):
    """Binance COIN-M futures: ``dstream`` endpoints, ``/dapi/v1/depth`` snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://dstream.binance.com"
    default_rest_url: ClassVar[str | None] = "https://dapi.binance.com"
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTCUSD_PERP", "ETHUSD_PERP")
    snapshot_path: ClassVar[str] = "/dapi/v1/depth"
    instruments_path: ClassVar[str] = "/dapi/v1/exchangeInfo"
    instruments_weight: ClassVar[int] = 1
    open_interest_path: ClassVar[str] = "/dapi/v1/openInterest"
    #: COIN-M is not part of USD-M's 2026 routing by category: one unrouted combined connection
    routed: ClassVar[bool] = False
    #: COIN-M documents 200 streams per connection (USD-M: 1024)
    max_streams_per_connection: ClassVar[int] = 200
    normaliser_class: ClassVar[type[BinanceFamilyNormaliser]] = BinanceDeliveryNormaliser

    def native_symbol(self, symbol: str) -> str:
        """``ETH-USD-PERP`` / ``ETHUSD_PERP`` -> ``ETHUSD_PERP``; dated contracts keep their ``_YYMMDD``."""
        upper = symbol.strip().upper()
        if upper.endswith("-PERP"):
            return upper[: -len("-PERP")].replace("-", "").replace("/", "") + PERP_SUFFIX
        return upper.replace("-", "").replace("/", "")

    def snapshot_request_weight(self, native_symbol: str) -> int:
        # COIN-M documents weight 20 for GET /dapi/v1/depth with limit 1000.
        return 20

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BinanceFuturesSimulator(self, config)


DIALECT_CLASS = BinanceDeliveryDialect
