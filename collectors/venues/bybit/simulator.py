"""The Bybit v5 simulator (linear and spot): topics, snapshots and deltas as Bybit sends them."""

from __future__ import annotations

import itertools
import uuid
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson
from aiohttp import web

from ...base import ExchangeDialect
from ...simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimulatorConfig
from . import instruments as bybit_instruments
from .common import (
    LINEAR_BOOK_DEPTHS,
    LIQUIDATION_EVERY,
    TICKER_BBO_FIELDS,
    BybitNormaliser,
)


class DepthWindow:
    """The simulator's view of one ``orderbook.N`` topic: the N-level window last pushed and its ``u``."""

    __slots__ = ("asks", "bids", "last_push_ns", "u")

    def __init__(self, u: int) -> None:
        self.u = u
        self.bids: dict[int, int] = {}  # ticks -> lots, as last pushed
        self.asks: dict[int, int] = {}
        self.last_push_ns = 0


def _window_levels(model: MarketModel, depth: int) -> tuple[dict[int, int], dict[int, int]]:
    """The best ``depth`` levels of each side as ticks -> lots (sliced, no scan, no formatting)."""
    bids, asks = model.bids, model.asks
    return (
        {t: bids[t] for t in bids.keys()[-depth:]},  # bids ascend in the model: best are last
        {t: asks[t] for t in asks.keys()[:depth]},
    )


def _wire(model: MarketModel, levels: dict[int, int], descending: bool) -> list[list[str]]:
    """Wire levels ``[price, size]`` in book order (size ``"0"`` deletes)."""
    return [
        [model.price_str(t), model.size_str(levels[t]) if levels[t] else "0"]
        for t in sorted(levels, reverse=descending)
    ]


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    """Levels that changed between two windows; levels that left the window get size 0."""
    changes = {t: v for t, v in new.items() if old.get(t) != v}
    for t in old:
        if t not in new:
            changes[t] = 0
    return changes


class BybitSimulator(ExchangeSimulator):
    """Bybit v5 public websocket on loopback: op-based subscribe, snapshot then deltas, ping/pong.

    :meth:`restart_orderbook_service` makes the next book message of a symbol a ``u == 1`` snapshot,
    as Bybit does after an orderbook service restart.
    """

    category: ClassVar[str] = "linear"
    #: level-1 books (linear and spot) are re-pushed as a snapshot after 3 s without change (documented)
    level1_repush_ns: ClassVar[int] = 3_000_000_000

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.ws_paths = (str(getattr(dialect, "ws_path", "/v5/public/linear")),)
        self.windows: dict[tuple[str, int], DepthWindow] = {}
        self.ticker_state: dict[str, tuple[str, str, str, str]] = {}
        #: per symbol: the second whose ticker last carried the derivatives fields
        self.ticker_second: dict[str, int] = {}
        self._rendered: tuple[MarketStep, dict[str, list[str]]] | None = None
        self._conn_ids = itertools.count(1)

    # -- protocol -----------------------------------------------------------------------------
    def valid_depths(self) -> tuple[int, ...]:
        """Depths this category offers (1 included)."""
        return (1, *getattr(self.dialect, "book_depths", LINEAR_BOOK_DEPTHS))

    async def on_open(self, session: ClientSession) -> None:
        session.state["conn_id"] = f"sim-{next(self._conn_ids)}"
        session.state["topics"] = set()

    def _reply(self, session: ClientSession, msg: dict[str, Any], success: bool, ret_msg: str) -> None:
        reply = {
            "success": success,
            "ret_msg": ret_msg,
            "conn_id": session.state["conn_id"],
            "req_id": str(msg.get("req_id", "")),
            "op": msg.get("op"),
        }
        self.send(session, orjson.dumps(reply).decode())

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"success":false,"ret_msg":"error:invalid json","op":""}')
            return
        if not isinstance(msg, dict):
            return
        op = msg.get("op")
        if op == "ping":
            self._reply(session, msg, True, "pong")
            return
        args = msg.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            self._reply(session, msg, False, f"error:unknown op {str(op)[:20]}")
            return
        limit = getattr(self.dialect, "args_per_request", 0)
        if self.category == "spot" and len(args) > limit:
            self._reply(session, msg, False, f"error:args size >{limit}")
            return
        parsed = [self._parse_topic(str(a)) for a in args]
        bad = [str(a) for a, p in zip(args, parsed, strict=True) if p is None]
        if bad:
            self._reply(session, msg, False, f"error:handler not found,topic:{bad[0][:60]}")
            return
        topics: set[str] = session.state["topics"]
        if op == "subscribe":
            already = [str(a) for a in args if a in topics]
            if already:
                self._reply(session, msg, False, f"error:already subscribed,topic:{already[0][:60]}")
                return
            self._reply(session, msg, True, "")
            for topic, p in zip(args, parsed, strict=True):
                assert p is not None
                topics.add(topic)
                channel, symbol, depth = p
                session.subscriptions.add((channel, symbol))
                session.state.setdefault("depth", {})[(channel, symbol)] = depth
                first = self.snapshot_frame(topic, symbol, depth)
                if first:
                    self.send(session, first)
        else:
            self._reply(session, msg, True, "")
            for topic, p in zip(args, parsed, strict=True):
                assert p is not None
                topics.discard(topic)
                session.subscriptions.discard((p[0], p[1]))

    def _parse_topic(self, topic: str) -> tuple[str, str, int] | None:
        """``(channel, native symbol, depth)`` of a topic this simulator serves, or None."""
        name, _, rest = topic.partition(".")
        if name == "publicTrade" and rest in self.markets:
            return ("trades", rest, 0)
        if name == "tickers" and rest in self.markets and self.category == "linear":
            return ("bbo", rest, 0)
        if name == "allLiquidation" and rest in self.markets and self.category == "linear":
            return ("liquidations", rest, 0)
        if name == "orderbook":
            depth_text, _, symbol = rest.partition(".")
            if depth_text.isdigit() and symbol in self.markets and int(depth_text) in self.valid_depths():
                depth = int(depth_text)
                return ("bbo" if depth == 1 else "book", symbol, depth)
        return None

    # -- frames ---------------------------------------------------------------------------------
    def window(self, symbol: str, depth: int) -> DepthWindow:
        """The window of a topic, created from the current market (so a snapshot is always current)."""
        key = (symbol, depth)
        w = self.windows.get(key)
        if w is None:
            model = self.markets[symbol]
            # a start value per topic that does not consume the market's random stream
            w = self.windows[key] = DepthWindow(
                u=1_000 + zlib.crc32(f"{symbol}.{depth}".encode()) % 1_000_000
            )
            w.bids, w.asks = _window_levels(model, depth)
        return w

    def restart_orderbook_service(self, symbol: str) -> None:
        """Simulates an orderbook service restart: every depth of ``symbol`` restarts at ``u = 0``.

        The next message of each topic then carries ``u == 1`` and must be treated as a snapshot.
        """
        for (sym, _), w in self.windows.items():
            if sym == symbol:
                w.u = 0

    def snapshot_frame(self, topic: str, symbol: str, depth: int) -> str:
        """The message a subscriber receives first: a book snapshot, a ticker snapshot, or nothing."""
        model = self.markets[symbol]
        ms = self.now_exchange_ns() // 1_000_000
        if topic.startswith("orderbook."):
            w = self.window(symbol, depth)
            new_b, new_a = _window_levels(model, depth)
            if new_b != w.bids or new_a != w.asks:  # the market moved while nobody watched
                w.bids, w.asks = new_b, new_a
                w.u += 1
            bids, asks = _wire(model, new_b, True), _wire(model, new_a, False)
            return self._book_frame(topic, "snapshot", symbol, w.u, model.update_id, bids, asks, ms)
        if topic.startswith("tickers."):
            (bp, bq), (ap, aq) = model.best()
            self.ticker_state[symbol] = (bp, bq, ap, aq)
            return self._ticker_frame(topic, "snapshot", symbol, model, (bp, bq, ap, aq), ms, full=True)
        return ""

    def _book_frame(
        self,
        topic: str,
        kind: str,
        symbol: str,
        u: int,
        seq: int,
        bids: Sequence[Sequence[str]],
        asks: Sequence[Sequence[str]],
        ms: int,
    ) -> str:
        return orjson.dumps(
            {
                "topic": topic,
                "type": kind,
                "ts": ms,
                "data": {"s": symbol, "b": bids, "a": asks, "u": u, "seq": seq},
                "cts": ms,
            }
        ).decode()

    def _ticker_frame(
        self,
        topic: str,
        kind: str,
        symbol: str,
        model: MarketModel,
        values: tuple[str | None, ...],
        ms: int,
        full: bool,
    ) -> str:
        data: dict[str, Any] = {"symbol": symbol}
        if full:
            data["lastPrice"] = values[0]
        for key, value in zip(TICKER_BBO_FIELDS, values, strict=True):
            if value is not None:
                data[key] = value
        second = ms // 1000
        if full or self.ticker_second.get(symbol) != second:
            # mark, index, funding and open interest: in the snapshot, then about once a second
            self.ticker_second[symbol] = second
            data.update(self.derivative_fields(model, ms))
        return orjson.dumps(
            {"topic": topic, "type": kind, "data": data, "cs": model.update_id, "ts": ms}
        ).decode()

    def derivative_fields(self, model: MarketModel, ms: int) -> dict[str, str]:
        """A linear ticker's mark, index, funding and open interest fields (strings, as Bybit sends)."""
        (bp, _), (ap, _) = model.best()
        mid = (float(bp) + float(ap)) / 2
        interval_ms = 8 * 3600 * 1000
        open_interest = 50_000 + model.update_id % 9_973 / 100
        return {
            "markPrice": f"{mid:.2f}",
            "indexPrice": f"{mid * 0.9999:.2f}",
            "fundingRate": "0.0001" if model.update_id % 2 else "-0.00005",
            "nextFundingTime": str((ms // interval_ms + 1) * interval_ms),
            "openInterest": f"{open_interest:.2f}",
            "openInterestValue": f"{open_interest * mid:.2f}",
        }

    def trade_id(self, trade_id: int) -> str:
        """Wire trade id: linear sends UUIDs (derived deterministically from the model's counter)."""
        return str(uuid.UUID(int=(trade_id * 0x9E3779B97F4A7C15F39CC0605CEDC835) % (1 << 128)))

    def trade_item(self, step: MarketStep, t: Any, ms: int) -> dict[str, Any]:
        """One element of a ``publicTrade`` message's data."""
        return {
            "T": ms,
            "s": step.symbol,
            "S": "Buy" if t.side == "buy" else "Sell",
            "v": t.size,
            "p": t.price,
            "L": "PlusTick" if t.side == "buy" else "MinusTick",
            "i": self.trade_id(t.trade_id),
            "BT": False,
            "RPI": False,
            "seq": step.update_id,
        }

    def step_topic_frames(self, step: MarketStep) -> dict[str, list[str]]:
        """Every topic's frames for one market step (computed once per step, for every session)."""
        # keyed by the step object itself: an id() of a freed step can be reused by the next one
        if self._rendered is not None and self._rendered[0] is step:
            return self._rendered[1]
        symbol = step.symbol
        ms = step.ts_ns // 1_000_000
        frames: dict[str, list[str]] = {}
        if step.trades:
            frames[f"publicTrade.{symbol}"] = [
                orjson.dumps(
                    {
                        "topic": f"publicTrade.{symbol}",
                        "type": "snapshot",
                        "ts": ms,
                        "data": [self.trade_item(step, t, ms) for t in step.trades],
                    }
                ).decode()
            ]
        for (sym, depth), w in self.windows.items():
            if sym != symbol:
                continue
            topic = f"orderbook.{depth}.{symbol}"
            model = step.model
            new_b, new_a = _window_levels(model, depth)
            db, da = _diff(w.bids, new_b), _diff(w.asks, new_a)
            w.bids, w.asks = new_b, new_a
            if db or da:
                w.u += 1
                if w.u == 1:  # after an orderbook service restart: a full snapshot with u = 1
                    kind, db, da = "snapshot", new_b, new_a
                else:
                    kind = "delta"
                bids, asks = _wire(model, db, True), _wire(model, da, False)
                frames[topic] = [self._book_frame(topic, kind, symbol, w.u, step.update_id, bids, asks, ms)]
                w.last_push_ns = step.ts_ns
            elif depth == 1 and step.ts_ns - w.last_push_ns >= self.level1_repush_ns:
                # documented: an unchanged level-1 book is re-sent as a snapshot with the same u
                bids, asks = _wire(model, new_b, True), _wire(model, new_a, False)
                frames[topic] = [
                    self._book_frame(topic, "snapshot", symbol, w.u, step.update_id, bids, asks, ms)
                ]
                w.last_push_ns = step.ts_ns
        liquidations = [
            {"T": ms, "s": symbol, "S": "Buy" if t.side == "sell" else "Sell", "v": t.size, "p": t.price}
            for t in step.trades
            if t.trade_id % LIQUIDATION_EVERY == 0
        ]
        if liquidations and self.category == "linear":
            topic = f"allLiquidation.{symbol}"
            frame = {"topic": topic, "type": "snapshot", "ts": ms, "data": liquidations}
            frames[topic] = [orjson.dumps(frame).decode()]
        if symbol in self.ticker_state:
            (bp, bq), (ap, aq) = step.model.best()
            old = self.ticker_state[symbol]
            new = (bp, bq, ap, aq)
            if new != old or self.ticker_second.get(symbol) != ms // 1000:
                self.ticker_state[symbol] = new
                changed = tuple(n if n != o else None for n, o in zip(new, old, strict=True))
                frames[f"tickers.{symbol}"] = [
                    self._ticker_frame(
                        f"tickers.{symbol}", "delta", symbol, step.model, changed, ms, full=False
                    )
                ]
        self._rendered = (step, frames)
        return frames

    #: instruments per ``instruments-info`` page (Bybit's largest ``limit``)
    instruments_page_size: int = 1000

    def instrument_routes(self) -> list[web.RouteDef]:
        return [web.get(bybit_instruments.PATH, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """``GET /v5/market/instruments-info?category=..``: this simulator's markets, paged."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        if request.query.get("category") != self.category:
            return web.json_response(
                {"retCode": 10001, "retMsg": "category mismatch (simulated)", "result": {}}
            )
        quotes = getattr(self.dialect, "normaliser_class", BybitNormaliser).quotes
        body = bybit_instruments.instruments_info_body(
            self.category, self.markets, quotes, request.query.get("cursor", ""), self.instruments_page_size
        )
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.step_topic_frames(step)
        topics: set[str] = session.state.get("topics", set())
        trades: list[str] = []
        book: list[str] = []
        bbo: list[str] = []
        for topic, topic_frames in frames.items():
            if topic not in topics:
                continue
            if topic.startswith("publicTrade."):
                trades.extend(topic_frames)
            elif topic.startswith(("orderbook.1.", "tickers.", "allLiquidation.")):
                bbo.extend(topic_frames)
            else:
                book.extend(topic_frames)
        return trades, book, bbo

    def publish_step(self, step: MarketStep) -> None:
        # Windows must advance every step even with no session (u is a per-topic global counter).
        self.step_topic_frames(step)
        super().publish_step(step)
