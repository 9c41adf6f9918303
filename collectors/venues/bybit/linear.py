"""``bybit``: the Bybit v5 linear perpetuals dialect (protocol and rules: :mod:`.common`)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

import orjson

from ...base import CHANNELS, DialectOptions, ExchangeDialect, Subscription
from ...events import (
    check_symbol,
)
from ...instruments import Instrument
from ...pacing import VenueLimits
from ...simulator import ExchangeSimulator, SimulatorConfig
from . import instruments as bybit_instruments

if TYPE_CHECKING:
    import aiohttp

from .common import (
    DEFAULT_BOOK_DEPTH,
    EXCHANGE,
    LINEAR_BOOK_DEPTHS,
    TICKER_CHANNELS,
    BybitNormaliser,
)
from .simulator import BybitSimulator


class BybitDialect(ExchangeDialect):
    """Bybit v5 linear: endpoint, topics, resubscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://stream.bybit.com"
    ws_path: ClassVar[str] = "/v5/public/linear"
    #: Bybit documents no public topic limit per connection; 200 topics keeps resubscribes cheap.
    max_streams_per_connection: ClassVar[int] = 200
    #: Bybit asks clients to ping every 20 s; it drops connections that stay silent.
    app_ping: ClassVar[tuple[str, float] | None] = ('{"op":"ping"}', 20.0)
    args_per_request: ClassVar[int] = 100
    #: at most 500 connections within 5 minutes per IP
    limits: ClassVar[VenueLimits] = VenueLimits(connections_per_window=500, connection_window_s=300.0)
    book_depths: ClassVar[tuple[int, ...]] = LINEAR_BOOK_DEPTHS
    bbo_sources: ClassVar[tuple[str, ...]] = ("orderbook.1", "tickers")
    #: linear perpetuals: mark, funding and open interest from ``tickers``, ``allLiquidation``
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, *TICKER_CHANNELS, "liquidations")
    normaliser_class: ClassVar[type[BybitNormaliser]] = BybitNormaliser

    def __init__(self, options: DialectOptions | None = None) -> None:
        super().__init__(options)
        depth = self.options.book_depth or DEFAULT_BOOK_DEPTH
        if depth not in self.book_depths:
            raise ValueError(
                f"{self.exchange_id}: book depth {depth} not offered; choose one of "
                f"{', '.join(map(str, self.book_depths))}"
            )
        self.book_depth = depth
        bbo = str(self.options.extra.get("bbo_source", self.bbo_sources[0]))
        if bbo not in self.bbo_sources:
            raise ValueError(f"{self.exchange_id}: bbo_source must be one of {', '.join(self.bbo_sources)}")
        self.bbo_source = bbo
        self._req_ids = itertools.count(1)

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT-PERP``/``BTC-USDT``/``btcusdt`` -> ``BTCUSDT``; ``BTC-USDC-PERP`` -> ``BTCPERP``."""
        upper = symbol.strip().upper().replace("/", "-")
        if upper.endswith("-PERP"):
            upper = upper[: -len("-PERP")]
            base, _, quote = upper.partition("-")
            return f"{base}PERP" if quote == "USDC" else f"{base}{quote}"
        base, dash, quote = upper.partition("-")
        if dash and quote in self.normaliser_class.quotes:
            return base + quote
        return upper  # native already, or a dated future (BTC-26DEC25) that keeps its name

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(self.normaliser_class().normalise_native(native.upper()))

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        return f"{ws_url.rstrip('/')}{self.ws_path}"

    def topics(self, native: str, channels: Sequence[str]) -> list[str]:
        """Topic names of one symbol's channels (``funding``, ``mark`` and ``open_interest`` share
        ``tickers``; listed once)."""
        ticker = f"tickers.{native}"
        names = {
            "trades": f"publicTrade.{native}",
            "book": f"orderbook.{self.book_depth}.{native}",
            "bbo": ticker if self.bbo_source == "tickers" else f"orderbook.1.{native}",
            "funding": ticker,
            "mark": ticker,
            "open_interest": ticker,
            "liquidations": f"allLiquidation.{native}",
        }
        topics: list[str] = []
        for c in channels:
            topic = names[c]
            if topic not in topics:
                topics.append(topic)
        return topics

    def _requests(self, op: str, topics: list[str]) -> list[str]:
        step = self.args_per_request
        return [
            orjson.dumps(
                {"op": op, "args": topics[i : i + step], "req_id": f"{op}-{next(self._req_ids)}"}
            ).decode()
            for i in range(0, len(topics), step)
        ]

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        topics = [t for s in sub.symbols for t in self.topics(s, sub.channels)]
        return self._requests("subscribe", topics)

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Unsubscribe then subscribe the book topics (book and bbo) of these symbols.

        Bybit answers a subscribe with a fresh snapshot; for a topic that was healthy the snapshot
        equals the held book and changes nothing. ``tickers`` (when it carries derivatives channels) is
        renewed too: its snapshot restarts the merged state.
        """
        channels = [c for c in ("book", "bbo", *TICKER_CHANNELS) if c in sub.channels]
        topics = [t for s in native_symbols for t in self.topics(s, channels)]
        if not topics:
            return []
        return self._requests("unsubscribe", topics) + self._requests("subscribe", topics)

    def new_normaliser(self) -> BybitNormaliser:
        return self.normaliser_class(tickers_bbo=self.bbo_source == "tickers")

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BybitSimulator(self, config)

    # -- instruments (.instruments) ------------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.bybit.com"
    #: the ``category`` of ``/v5/market/instruments-info`` this dialect lists
    instruments_category: ClassVar[str] = "linear"

    def instruments_paths(self) -> list[str]:
        return [bybit_instruments.first_path(self.instruments_category)]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return bybit_instruments.parse_instruments_info(self, body, ts_recv)

    async def fetch_instruments(
        self,
        http: aiohttp.ClientSession,
        rest_url: str,
        spend: Callable[[int], Awaitable[None]] | None = None,
    ) -> list[Instrument]:
        """Every page of the category (``cursor`` paging), at most ``MAX_PAGES``, each one request."""
        out: list[Instrument] = []
        path: str | None = self.instruments_paths()[0]
        for _ in range(bybit_instruments.MAX_PAGES):
            if path is None:
                break
            body = await self.instruments_body(http, rest_url, path, spend)
            out.extend(self.parse_instruments(body, time.time_ns()))
            path = bybit_instruments.next_path(self.instruments_category, body)
        return out


# -- simulator ---------------------------------------------------------------------------------------


DIALECT_CLASS = BybitDialect
