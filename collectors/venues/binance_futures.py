"""Binance USD-M futures (exchange id ``binance-futures``): ``fstream`` routed streams + REST snapshot.

Routing (since 2026-04-23; Binance's "Important WebSocket Change Notice" of 2026-03-06): USD-M market
data is served on category paths of ``wss://fstream.binance.com``:
- ``/public``: high-frequency data, ``<sym>@depth...``, ``<sym>@bookTicker``, ``<sym>@trade`` (and
  ``rpiDepth``);
- ``/market``: ``aggTrade``, ``markPrice``, ``kline``, ``forceOrder``, tickers and the other regular streams;
- ``/private``: user data (not used here).
Both access modes stay (``/<route>/ws/<stream>`` and ``/<route>/stream?streams=a/b``); one connection
may not mix categories, so :meth:`BinanceFuturesDialect.channel_groups` puts channels of different
routes on different connections. The unrouted ``/ws`` and ``/stream`` still accept a connection but
deliver no depth (a field report of 2026-09: only bookTicker and trades arrive; Binance's CAAS page
says unrouted paths carry only ``/public`` data, which would include depth: we follow the field report
and never use them). ``--ws-url`` is the base URL (``wss://fstream.binance.com`` or a simulator's
``ws://127.0.0.1:PORT``); the collector derives ``/public`` and ``/market`` from it (a given
``/public``/``/market``/``/ws``/``/stream`` suffix is dropped first). COIN-M (``dstream``) is not
routed: a subclass sets :attr:`BinanceFuturesDialect.routed` to False.

Streams: ``<sym>@trade``, ``<sym>@depth@100ms`` (``@depth@0ms`` and ``@depth@500ms`` parse the same
way), ``<sym>@bookTicker``, all on ``/public``. At most 1024 streams per connection, 10 incoming
messages per second per connection (above it Binance disconnects), every connection closed at 24 h
(rotated at 23 h here). Snapshot: ``GET /fapi/v1/depth`` (weight 20 at ``limit=1000``).

Sources (checked 2026-12-05):
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Important-WebSocket-Change-Notice
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
https://developers.binance.com/docs/derivatives/change-log (2026-04-02 entry: legacy paths retire 2026-04-23)
Peers: ccxt PR 28091 (https://github.com/ccxt/ccxt/pull/28091; issue 28083 notes ``trade`` on
``/public``), unicorn-binance-websocket-api PR 441
(https://github.com/oliver-zehentleitner/unicorn-binance-websocket-api/pull/441: refuses mixed categories).

Book sync, as Binance documents it for USD-M futures (it differs from spot):
1. buffer depth events; fetch the REST snapshot;
2. drop buffered events with ``u < lastUpdateId``;
3. the first applied event must straddle the snapshot: ``U <= lastUpdateId <= u`` (spot uses
   ``lastUpdateId + 1``); an event that starts after ``lastUpdateId`` means the snapshot is too old:
   fetch another;
4. afterwards each event's ``pu`` (the previous event's final update id) must equal the ``u`` of the
   event applied before it. Update ids are NOT contiguous on futures (``U`` of an event is not
   ``previous u + 1``), which is why the ``pu`` chain is the only valid continuity proof. An event
   whose ``pu`` does not match is a gap unless it lies entirely at or before the book's state
   (``u <= previous u``: a repeated or late event, ignored and counted as ``duplicate``).
A gap resets that symbol only: ``gap`` event, book cleared, new snapshot, ``resync``, ``epoch + 1``.

Derivatives channels (issue 15), all on ``/market``:
- ``mark`` and ``funding``: ``<sym>@markPrice@1s`` (one event per second): mark ``p``, index ``i``,
  funding rate ``r`` and next funding time ``T``, at event time ``E``; one ``mark_price`` row per event
  and, for perpetuals, one ``funding`` row (``predicted_rate`` null: Binance publishes none). Dated
  contracts send ``r: ""`` and ``T: 0``: no funding row. Both channels ride the one stream, so either
  one subscribes it and both datasets get rows.
- ``liquidations``: ``<sym>@forceOrder``: Binance pushes at most the latest liquidation order per symbol
  per 1000 ms (a snapshot stream: liquidations in between are not sent). One row per event: side
  ``o.S`` (the liquidation order's side: it takes liquidity, so it is the taker side the schema asks
  for; ``SELL`` liquidated a long), price ``o.ap`` (average fill price; ``o.p`` when ``ap`` is 0),
  size ``o.z`` (filled quantity; ``o.q`` when ``z`` is 0), time ``o.T`` (order trade time); Binance
  gives no id (``liquidation_id`` null).
- ``open_interest``: REST only (``GET /fapi/v1/openInterest?symbol=``, weight 1, answer
  ``{openInterest, symbol, time}``). The ``/market`` connection polls it for each of its symbols every
  :attr:`ExchangeDialect.poll_interval_s` (10 s), slower when a round would spend more than a quarter of
  the REST budget (``collectors.connection.POLL_BUDGET_SHARE``), and injects each answer into the stream
  as a generated frame ``{"stream":"<sym>@openInterest","generated":true,"data":<body>}``: the capture
  holds it, so a replay gives the live rows. ``ts_exchange`` is the answer's ``time``.

Derivatives sources (checked 2026-12-05):
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream
https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Liquidation-Order-Streams
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest
(confirmed 2026-12-05 from a stored copy of that page: ``GET /fapi/v1/openInterest``, request weight 1,
parameter ``symbol``, answer ``{"openInterest": "10659.509", "symbol": "BTCUSDT", "time":
1589437530011}`` with ``time`` the "transaction time"; that example is a test)

Timestamps (``ts_exchange``): trades use ``T`` (trade time); depth events, ``@bookTicker`` and the
REST snapshot use ``E`` (event / message output time). Unlike spot, futures ``@bookTicker`` carries
``E`` and ``T``, and the futures snapshot carries ``E`` and ``T``.

Trades: futures ``@trade`` events carry ``X`` (execution type). Only ``MARKET`` executions are
trades between market participants; insurance-fund and ADL fills (any other ``X``) are not market
trades and are recorded as ``non_market_trade`` feed events instead of trade rows.

Symbols: perpetuals (``ETHUSDT``) become ``ETH-USDT-PERP``; delivery contracts keep Binance's
name (``BTCUSDT_250926``), as DESIGN.md requires for dated futures.

Checked against the shared recording ``binance-futures/ethusdt_20240808`` (``@depth@0ms`` with
``pu``, ``@bookTicker`` with ``E``/``T``, ``@trade`` with ``X=MARKET``): the rebuilt book equals
``@bookTicker`` at every equal update id and no gap is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from aiohttp import web

from schemas import RecordBuffer

from ..base import CHANNELS, ExchangeDialect, Subscription
from ..book import SyncedBook
from ..events import ParseError, emit_event, funding_rate, ms_to_ns, non_negative_size, positive_price
from ..pacing import VenueLimits
from ..simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from .binance import (
    BinanceDialect,
    BinanceFamilyNormaliser,
    BinanceSimulator,
    split_binance_symbol,
    stream_query,
)

if TYPE_CHECKING:
    import aiohttp

EXCHANGE = "binance-futures"
#: our channel -> its USD-M stream kind (``open_interest`` has none: it is polled over REST)
CHANNEL_STREAMS: dict[str, str] = {
    "trades": "trade",
    "bbo": "bookTicker",
    "funding": "markPrice@1s",
    "mark": "markPrice@1s",
    "liquidations": "forceOrder",
}
#: simulator: stream kind -> subscription key of the derivatives streams
DERIVATIVE_STREAMS = {"markPrice@1s": "markPrice", "markPrice": "markPrice", "forceOrder": "forceOrder"}
#: simulator: one trade in this many (by id) comes with a liquidation order (at most one per second)
LIQUIDATION_EVERY = 4
#: the liquidation order's side (``o.S``) -> our taker side
LIQUIDATION_SIDES = {"BUY": "buy", "SELL": "sell"}

#: USD-M stream kind (the part after ``@``, up to the next ``@``) -> its routed path
STREAM_ROUTES: dict[str, str] = {
    "depth": "public",
    "rpiDepth": "public",
    "bookTicker": "public",
    "trade": "public",
    "aggTrade": "market",
    "markPrice": "market",
    "kline": "market",
    "continuousKline": "market",
    "forceOrder": "market",
    "ticker": "market",
    "miniTicker": "market",
    "compositeIndex": "market",
    "contractInfo": "market",
    "assetIndex": "market",
}
ROUTES = ("public", "market")


def stream_route(stream: str) -> str:
    """The routed path of a stream name (``btcusdt@depth@100ms`` -> ``public``); unknown kinds: market."""
    kind = stream.partition("@")[2].partition("@")[0].partition("_")[0]
    return STREAM_ROUTES.get(kind, "market")


def base_ws_url(ws_url: str) -> str:
    """The base URL of a given one: a trailing route or access-mode path is dropped."""
    url = ws_url.rstrip("/")
    for suffix in ("/stream", "/ws"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    for route in (*ROUTES, "private"):
        if url.endswith("/" + route):
            url = url[: -len(route) - 1]
    return url


class BinanceFuturesNormaliser(BinanceFamilyNormaliser):
    """Binance USD-M futures frames -> records (``pu`` chain book sync, see the module docstring)."""

    exchange: ClassVar[str] = EXCHANGE
    frame_scan_rule: ClassVar[str | None] = "futures"

    def normalise_native(self, native: str) -> str:
        """``ETHUSDT`` -> ``ETH-USDT-PERP``; dated contracts (``BTCUSDT_250926``) keep their name."""
        if "_" in native:
            return native.upper()
        base, quote = split_binance_symbol(native)
        return f"{base}-{quote}-PERP"

    def on_trade(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``@trade`` event; non-market executions (insurance fund, ADL) are not trades."""
        execution = data.get("X", "MARKET")
        if execution != "MARKET":
            symbol = self.normalise(data["s"])
            emit_event(
                out,
                self.exchange,
                symbol,
                "trades",
                ts_recv,
                "non_market_trade",
                {"X": str(execution)[:40], "t": data.get("t")},
            )
            return
        super().on_trade(ts_recv, data, out)

    def book_ticker_time(self, data: dict[str, Any]) -> int | None:
        """Futures ``@bookTicker`` carries the event time ``E``."""
        return ms_to_ns(data["E"])

    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        """The futures snapshot carries ``E`` (message output time); null when absent."""
        value = data.get("E")
        return None if value is None else ms_to_ns(value)

    def on_snapshot(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A REST snapshot: the next applied event must straddle ``lastUpdateId`` (futures rule)."""
        self.awaiting_first.add(native)
        super().on_snapshot(ts_recv, native, data, out)

    def apply_depth(
        self, ts_recv: int, book: SyncedBook, native: str, data: dict[str, Any], out: RecordBuffer
    ) -> None:
        """Applies one event to a synced book under the futures rule, or detects a gap."""
        first, last = data["U"], data["u"]
        prev = book.last_seq
        assert prev is not None
        if native in self.awaiting_first:
            if last < prev:
                self.validate_levels(book, data)
                return  # older than the snapshot: already contained in it
            if first > prev:
                # The snapshot is older than every event we hold: it cannot be joined, fetch another.
                self.awaiting_first.discard(native)
                self._gap(book, native, ts_recv, data, out, {"lastUpdateId": prev, "U": first, "u": last})
                return
            self.awaiting_first.discard(native)
        else:
            pu = data["pu"]
            if not isinstance(pu, int) or isinstance(pu, bool):
                raise ParseError("depth update pu is not an integer", book.symbol, "book")
            if pu != prev:
                if last <= prev:
                    # A repeated or late event: the book already holds it.
                    self.validate_levels(book, data)
                    emit_event(
                        out, self.exchange, book.symbol, "book", ts_recv, "duplicate", {"u": last, "pu": pu}
                    )
                    return
                self._gap(book, native, ts_recv, data, out, {"expected_pu": prev, "pu": pu, "u": last})
                return
        ts_exchange = ms_to_ns(data["E"])
        self.apply_levels(ts_recv, ts_exchange, book, data, last, out)

    def _gap(
        self,
        book: SyncedBook,
        native: str,
        ts_recv: int,
        data: dict[str, Any],
        out: RecordBuffer,
        detail: dict[str, Any],
    ) -> None:
        """Breaks one symbol's book: ``gap`` event, buffer this event, ask for a new snapshot."""
        book.gap(out, ts_recv, "gap", detail)
        self.buffer(book, native, ts_recv, data, out)

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Every book waits for a new snapshot after a disconnect."""
        self.awaiting_first.clear()
        super().on_disconnect(ts_recv, out)

    # -- derivatives channels --------------------------------------------------------------------
    def on_other_stream(
        self, ts_recv: int, stream: str, kind: str, data: dict[str, Any], out: RecordBuffer
    ) -> None:
        """``markPrice`` (mark, index, funding), ``forceOrder`` (liquidations), polled open interest."""
        if kind.startswith("markPrice"):
            self.on_mark_price(ts_recv, data, out)
        elif kind == "forceOrder":
            self.on_force_order(ts_recv, data, out)
        elif kind == "openInterest":
            self.on_open_interest(ts_recv, data, out)
        else:
            super().on_other_stream(ts_recv, stream, kind, data, out)

    def on_mark_price(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``markPriceUpdate``: a ``mark_price`` row, and a ``funding`` row for perpetuals."""
        symbol = self.normalise(data["s"])
        ts_exchange = ms_to_ns(data["E"])
        mark = positive_price(data["p"], "mark price p")
        index_raw = data.get("i")
        index = None if index_raw in (None, "") else positive_price(index_raw, "index price i")
        rate_raw = data.get("r")
        rate = None if rate_raw in (None, "") else funding_rate(rate_raw, symbol, "funding rate r")
        next_raw = data.get("T")
        next_time = None if next_raw in (None, 0, "", "0") else ms_to_ns(next_raw)
        self.emit_mark_price(out, symbol, ts_exchange, ts_recv, mark, index)
        if rate is not None:  # dated contracts send r "" (no funding)
            self.emit_funding(out, symbol, ts_exchange, ts_recv, rate, None, next_time)

    def on_force_order(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``forceOrder`` event: one ``liquidations`` row (the liquidation order's side, average price
        and filled quantity, at its trade time)."""
        order = data["o"]
        if not isinstance(order, dict):
            raise ParseError("forceOrder o is not an object", channel="liquidations")
        symbol = self.normalise(order["s"])
        side = LIQUIDATION_SIDES.get(order["S"]) if isinstance(order["S"], str) else None
        if side is None:
            raise ParseError(f"unknown liquidation side {str(order['S'])[:20]!r}", symbol, "liquidations")
        price = _filled_or(order, "ap", "p", "liquidation price")
        size = _filled_or(order, "z", "q", "liquidation size")
        self.emit_liquidation(out, symbol, ms_to_ns(order["T"]), ts_recv, None, side, price, size)

    def on_open_interest(self, ts_recv: int, data: dict[str, Any], out: RecordBuffer) -> None:
        """A polled ``GET openInterest`` answer (a generated frame): one ``open_interest`` row."""
        symbol = self.normalise(data["symbol"])
        open_interest = non_negative_size(data["openInterest"], "openInterest")
        self.emit_open_interest(out, symbol, ms_to_ns(data["time"]), ts_recv, open_interest)


def _filled_or(order: dict[str, Any], filled: str, fallback: str, what: str) -> float:
    """``order[filled]`` when it is a positive number (average price, filled quantity), else
    ``order[fallback]`` (order price, original quantity), which must be positive."""
    value = order.get(filled)
    if value not in (None, ""):
        x = non_negative_size(value, f"{what} {filled}")
        if x > 0.0:
            return x
    return positive_price(order[fallback], f"{what} {fallback}")


def open_interest_frame(native_symbol: str, body: str | bytes) -> str:
    """Wraps a REST open interest answer as a generated capture frame (DESIGN.md, capture format)."""
    text = body.decode() if isinstance(body, bytes) else body
    return f'{{"stream":"{native_symbol.lower()}@openInterest","generated":true,"data":{text}}}'


class BinanceFuturesDialect(BinanceDialect):
    """Binance USD-M futures: ``fstream`` endpoints, ``/fapi/v1/depth`` snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://fstream.binance.com"
    default_rest_url: ClassVar[str | None] = "https://fapi.binance.com"
    #: 1024 streams per connection (USD-M websocket market streams page)
    max_streams_per_connection: ClassVar[int] = 1024
    #: 10 incoming messages/s per connection; connection attempts as on spot (300 per 5 minutes per IP)
    limits: ClassVar[VenueLimits] = VenueLimits(
        connections_per_window=300, connection_window_s=300.0, messages_per_second=10
    )
    #: USD-M routes streams by category (``/public``, ``/market``); COIN-M (dstream) does not
    routed: ClassVar[bool] = True
    snapshot_path: ClassVar[str] = "/fapi/v1/depth"
    #: open interest is REST only: polled (see the module docstring)
    open_interest_path: ClassVar[str] = "/fapi/v1/openInterest"
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")
    normaliser_class: ClassVar[type[BinanceFamilyNormaliser]] = BinanceFuturesNormaliser
    instruments_path: ClassVar[str] = "/fapi/v1/exchangeInfo"
    instruments_weight: ClassVar[int] = 1

    def native_symbol(self, symbol: str) -> str:
        """``ETH-USDT-PERP`` / ``ETHUSDT`` -> ``ETHUSDT``; dated contracts keep their ``_YYMMDD``."""
        upper = symbol.upper()
        if upper.endswith("-PERP"):
            upper = upper[: -len("-PERP")]
        return upper.replace("-", "").replace("/", "")

    def snapshot_request_weight(self, native_symbol: str) -> int:
        # USD-M documents weight 20 for GET /fapi/v1/depth with limit 1000.
        return 20

    def stream_kind(self, channel: str) -> str | None:
        """The stream kind of a channel (``None`` for ``open_interest``, which is polled over REST)."""
        if channel == "book":
            return self.depth_stream
        return CHANNEL_STREAMS.get(channel)

    def streams(self, sub: Subscription) -> list[str]:
        """Stream names of a subscription (lower-case symbols; ``funding`` and ``mark`` share one)."""
        names: list[str] = []
        for s in sub.symbols:
            lower = s.lower()
            for c in sub.channels:
                kind = self.stream_kind(c)
                if kind is not None:
                    name = f"{lower}@{kind}"
                    if name not in names:
                        names.append(name)
        return names

    def route_of(self, channel: str) -> str:
        """The routed path a channel's stream lives on (``public`` for trades, book and bbo; polled
        open interest rides the ``market`` connection)."""
        kind = self.stream_kind(channel)
        return "market" if kind is None else stream_route(f"x@{kind}")

    def rest_polls(self, sub: Subscription) -> list[tuple[str, str]]:
        """Open interest of every symbol of the connection that carries it (REST only)."""
        if "open_interest" not in sub.channels:
            return []
        return [("open_interest", s) for s in sub.symbols]

    async def fetch_poll(self, http: aiohttp.ClientSession, rest_url: str, channel: str, key: str) -> str:
        """``GET <open_interest_path>?symbol=`` wrapped as a generated ``<sym>@openInterest`` frame."""
        url = f"{rest_url.rstrip('/')}{self.open_interest_path}"
        async with http.get(url, params={"symbol": key.upper()}) as resp:
            resp.raise_for_status()
            body = await resp.read()
        return open_interest_frame(key, body)

    def channel_groups(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        """One group per route: a connection never mixes ``/public`` and ``/market`` streams."""
        if not self.routed:
            return [tuple(channels)]
        groups: dict[str, list[str]] = {}
        for channel in channels:
            groups.setdefault(self.route_of(channel), []).append(channel)
        return [tuple(g) for g in groups.values()]

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        """``<base>/<route>/stream?streams=...`` (routed), else ``<base>/stream?streams=...``."""
        streams = self.streams(sub)
        base = base_ws_url(ws_url)
        if not streams:  # only polled channels: a connection with no stream (it carries the polls)
            return f"{base}/market/ws" if self.routed else f"{base}/ws"
        if not self.routed:
            return f"{base}/stream?streams={stream_query(streams)}"
        routes = {stream_route(name) for name in streams}
        if len(routes) != 1:
            raise ValueError(f"{self.exchange_id}: one connection may not mix routes {sorted(routes)}")
        return f"{base}/{routes.pop()}/stream?streams={stream_query(streams)}"

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        return BinanceFuturesSimulator(self, config)


class BinanceFuturesSimulator(BinanceSimulator):
    """USD-M futures on loopback: frames carry ``pu``, ``T``, ``E`` and ``X`` as the real feed does.

    Routing as the venue does since 2026-04-23: ``/public`` serves only public streams and ``/market``
    only market streams (a stream of the other category is accepted and stays silent); the unrouted
    ``/ws`` and ``/stream`` accept connections but deliver no depth. :attr:`paths_used` counts the
    paths clients connected to.
    """

    ws_paths = ("/public/stream", "/public/ws", "/market/stream", "/market/ws", "/stream", "/ws")

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self._futures_rendered: tuple[MarketStep, tuple[list[str], list[str], list[str]]] | None = None
        self._derivatives_rendered: tuple[MarketStep, tuple[list[str], list[str]]] | None = None
        self.paths_used: dict[str, int] = {}
        # per symbol: the second of the last markPrice / forceOrder event (both are per-second streams)
        self._mark_second: dict[str, int] = {}
        self._liquidation_second: dict[str, int] = {}
        #: of :attr:`rest_requests`: the open interest polls
        self.open_interest_requests = 0

    async def on_open(self, session: ClientSession) -> None:
        path = session.request.path
        self.paths_used[path] = self.paths_used.get(path, 0) + 1
        route = path.strip("/").partition("/")[0]
        session.state["route"] = route if route in ROUTES else None
        await super().on_open(session)

    def _subscribe(self, session: ClientSession, streams: Sequence[str]) -> None:
        routed = bool(getattr(self.dialect, "routed", True))
        route = session.state.get("route")
        delivered = []
        for name in streams:
            kind = name.partition("@")[2]
            if not routed:
                delivered.append(name)
            elif route is None:
                if not kind.startswith("depth"):  # unrouted paths: no depth (field report, 2026-09)
                    delivered.append(name)
            elif stream_route(name) == route:
                delivered.append(name)
        for name in delivered:
            symbol, _, kind = name.partition("@")
            key = DERIVATIVE_STREAMS.get(kind)
            if key is not None and symbol.upper() in self.markets:
                session.subscriptions.add((key, symbol.upper()))
        super()._subscribe(session, delivered)

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        trades, book, bbo = super().render(session, step)
        sym = step.symbol
        wants_mark = session.subscribed("markPrice", sym)
        wants_liquidations = session.subscribed("forceOrder", sym)
        if not (wants_mark or wants_liquidations):
            return trades, book, bbo
        marks, liquidations = self.derivative_frames(step)
        return (
            trades,
            book,
            bbo + (marks if wants_mark else []) + (liquidations if wants_liquidations else []),
        )

    def derivative_frames(self, step: MarketStep) -> tuple[list[str], list[str]]:
        """``@markPrice@1s`` and ``@forceOrder`` frames of a step: at most one of each per symbol and
        second, as the venue pushes them (rendered once per step and shared by every client)."""
        cached = self._derivatives_rendered
        if cached is not None and cached[0] is step:
            return cached[1]
        sym, lower, ms = step.symbol, step.symbol.lower(), step.ts_ns // 1_000_000
        second = ms // 1000
        marks: list[str] = []
        if self._mark_second.get(sym) != second:
            self._mark_second[sym] = second
            (bp, _), (ap, _) = step.model.best()
            mid = (float(bp) + float(ap)) / 2
            perpetual = "_" not in sym or sym.endswith("_PERP")
            interval_ms = 8 * 3600 * 1000
            data = {
                "e": "markPriceUpdate",
                "E": ms,
                "s": sym,
                "p": f"{mid:.8f}",
                "i": f"{mid * 0.9999:.8f}",
                "P": f"{mid * 1.0001:.8f}",
                "r": "0.00010000" if perpetual else "",
                "T": (ms // interval_ms + 1) * interval_ms if perpetual else 0,
            }
            marks.append(orjson.dumps({"stream": f"{lower}@markPrice@1s", "data": data}).decode())
        liquidations: list[str] = []
        trade = next((t for t in step.trades if t.trade_id % LIQUIDATION_EVERY == 0), None)
        if trade is not None and self._liquidation_second.get(sym) != second:
            self._liquidation_second[sym] = second
            order: dict[str, Any] = {
                "s": sym,
                "S": trade.side.upper(),
                "o": "LIMIT",
                "f": "IOC",
                "q": trade.size,
                "p": trade.price,
                "ap": trade.price,
                "X": "FILLED",
                "l": trade.size,
                "z": trade.size,
                "T": ms,
            }
            if "_" in sym:
                order["ps"] = sym.partition("_")[0]
            frame = {"stream": f"{lower}@forceOrder", "data": {"e": "forceOrder", "E": ms, "o": order}}
            liquidations.append(orjson.dumps(frame).decode())
        self._derivatives_rendered = (step, (marks, liquidations))
        return marks, liquidations

    async def open_interest_handler(self, request: web.Request) -> web.Response:
        """``GET openInterest?symbol=S``: the symbol's open interest now (deterministic per update id)."""
        self.rest_requests += 1
        self.open_interest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        symbol = request.query.get("symbol", "").upper()
        model = self.markets.get(symbol)
        if model is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        body: dict[str, Any] = {
            "openInterest": f"{10_000 + model.update_id % 9_973 / 1000:.3f}",
            "symbol": symbol,
            "time": self.now_exchange_ns() // 1_000_000,
        }
        if "_" in symbol:  # COIN-M adds the pair and contract type
            body["pair"] = symbol.partition("_")[0]
            body["contractType"] = "PERPETUAL" if symbol.endswith("_PERP") else "CURRENT_QUARTER"
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def rest_routes(self) -> list[web.RouteDef]:
        path: str = getattr(self.dialect, "open_interest_path", "/fapi/v1/openInterest")
        return [*super().rest_routes(), web.get(path, self.open_interest_handler)]

    def step_frames(self, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        """Frames of one market step, rendered once per step and shared by every client."""
        cached = self._futures_rendered
        if cached is not None and cached[0] is step:
            return cached[1]
        lower, ms = step.symbol.lower(), step.ts_ns // 1_000_000
        trades = [
            orjson.dumps(
                {
                    "stream": f"{lower}@trade",
                    "data": {
                        "e": "trade",
                        "E": ms,
                        "T": ms,
                        "s": step.symbol,
                        "t": t.trade_id,
                        "p": t.price,
                        "q": t.size,
                        "X": "MARKET",
                        "m": t.side == "sell",
                    },
                }
            ).decode()
            for t in step.trades
        ]
        (bp, bq), (ap, aq) = step.model.best()
        frames = (trades, [self.depth_frame(step, ms)], [self.book_ticker_frame(step, ms, bp, bq, ap, aq)])
        self._futures_rendered = (step, frames)
        return frames

    def depth_frame(self, step: MarketStep, ms: int) -> str:
        """A futures ``@depth`` event: ``pu`` is the previous event's ``u``."""
        return orjson.dumps(
            {
                "stream": f"{step.symbol.lower()}@depth@100ms",
                "data": {
                    "e": "depthUpdate",
                    "E": ms,
                    "T": ms,
                    "s": step.symbol,
                    "U": step.first_update_id,
                    "u": step.update_id,
                    "pu": step.first_update_id - 1,
                    "b": step.bids,
                    "a": step.asks,
                },
            }
        ).decode()

    def book_ticker_frame(self, step: MarketStep, ms: int, bp: str, bq: str, ap: str, aq: str) -> str:
        """A futures ``@bookTicker`` event (with ``E`` and ``T``)."""
        return orjson.dumps(
            {
                "stream": f"{step.symbol.lower()}@bookTicker",
                "data": {
                    "e": "bookTicker",
                    "u": step.update_id,
                    "s": step.symbol,
                    "b": bp,
                    "B": bq,
                    "a": ap,
                    "A": aq,
                    "T": ms,
                    "E": ms,
                },
            }
        ).decode()

    def snapshot_body(self, symbol: str, limit: int) -> dict[str, Any]:
        """The futures snapshot body: ``lastUpdateId``, ``E``, ``T``, levels."""
        body = super().snapshot_body(symbol, limit)
        ms = self.now_exchange_ns() // 1_000_000
        return {
            "lastUpdateId": body["lastUpdateId"],
            "E": ms,
            "T": ms,
            "bids": body["bids"],
            "asks": body["asks"],
        }


DIALECT_CLASS = BinanceFuturesDialect
