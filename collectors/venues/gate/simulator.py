"""Gate v4 on loopback, spot (``/ws/v4/``) and USDT perpetuals (``/v4/ws/usdt``), with their REST order books.

Speaks what :mod:`.spot` and :mod:`.futures` read: ``{"time","channel","event","payload"}`` subscriptions
answered ``{"event":"subscribe","error":null,"result":{"status":"success"}}`` (or an ``error`` with code 2
for an unknown pair or channel), ``<prefix>.ping`` answered ``<prefix>.pong``, ``trades`` /
``order_book_update`` / ``book_ticker`` pushes, and ``GET .../order_book?...&with_id=true``.
Futures also serve ``futures.tickers`` (mark, index, funding, indicative funding and open interest,
about once a second per contract) and ``futures.public_liquidates`` (one trade in
:data:`LIQUIDATION_EVERY`, by id, also appears as a liquidation order of the same side).

Futures sizes are whole contracts (the market model's lots); they are sent as decimal strings when the
client connected with ``X-Gate-Size-Decimal: 1`` and as integers otherwise, as Gate does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ...simulator import ClientSession, ExchangeSimulator, MarketStep, SimTrade, SimulatorConfig
from .. import htx_gate_instruments, spot_instruments

if TYPE_CHECKING:
    from .common import GateDialect

#: our channel of each subscribable Gate channel name (without its prefix)
CHANNELS = {"trades": "trades", "order_book_update": "book", "book_ticker": "bbo"}
#: futures only: the derivatives channels (``ticker`` carries mark, funding and open interest)
FUTURES_CHANNELS = {**CHANNELS, "tickers": "ticker", "public_liquidates": "liquidations"}
#: futures: one trade in this many (by id) is also pushed as a liquidation order
LIQUIDATION_EVERY = 4


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


#: one step's frames: trades, book, book ticker, ``futures.tickers``, ``futures.public_liquidates``
StepFrames = tuple[list[str], list[str], list[str], list[str], list[str]]


class GateSimulator(ExchangeSimulator):
    """A Gate v4 venue (spot or USDT perpetuals, after its dialect's prefix) on 127.0.0.1."""

    def __init__(self, dialect: GateDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.gate: GateDialect = dialect
        self.prefix = dialect.prefix
        self.futures = self.prefix == "futures"
        path = dialect.ws_path
        self.ws_paths = tuple({path, path.rstrip("/") or "/"})
        # frames of the last step per size mode (decimal strings or integers), shared by every client
        self._rendered: dict[bool, tuple[MarketStep, StepFrames]] = {}
        self.channel_names = FUTURES_CHANNELS if self.futures else CHANNELS
        #: futures: the second of each contract's last ticker push, and the steps that push one
        self._ticker_second: dict[str, int] = {}
        self._ticker_due: dict[str, MarketStep] = {}

    # -- websocket -------------------------------------------------------------------------------
    async def on_open(self, session: ClientSession) -> None:
        session.state["decimal"] = session.request.headers.get("X-Gate-Size-Decimal") == "1"

    def _reply(self, session: ClientSession, channel: str, event: str, error: dict[str, Any] | None) -> None:
        now = time.time_ns()
        self.send(
            session,
            _dumps(
                {
                    "time": now // 1_000_000_000,
                    "time_ms": now // 1_000_000,
                    "channel": channel,
                    "event": event,
                    "error": error,
                    "result": None if error else {"status": "success"},
                }
            ),
        )

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            self._reply(session, "", "", {"code": 1, "message": "Invalid request body format"})
            return
        channel, event = str(msg.get("channel", "")), str(msg.get("event", ""))
        prefix, _, name = channel.partition(".")
        if channel == f"{self.prefix}.ping":
            now = time.time_ns()
            pong = {
                "time": now // 1_000_000_000,
                "time_ms": now // 1_000_000,
                "channel": f"{self.prefix}.pong",
            }
            self.send(session, _dumps({**pong, "event": "", "error": None, "result": None}))
            return
        ours = self.channel_names.get(name)
        if prefix != self.prefix or ours is None or event not in ("subscribe", "unsubscribe"):
            self._reply(session, channel, event, {"code": 2, "message": f"unknown channel {channel[:40]}"})
            return
        payload = msg.get("payload")
        if not isinstance(payload, list) or not payload or not all(isinstance(p, str) for p in payload):
            self._reply(session, channel, event, {"code": 2, "message": "invalid argument"})
            return
        symbols = payload[:1] if ours == "book" else payload
        if ours == "book" and (len(payload) < 2 or payload[1] not in ("20ms", "100ms")):
            self._reply(session, channel, event, {"code": 2, "message": "invalid interval"})
            return
        unknown = [s for s in symbols if s not in self.markets]
        if unknown:
            self._reply(
                session, channel, event, {"code": 2, "message": f"unknown currency pair {unknown[0]}"}
            )
            return
        for s in symbols:
            if event == "subscribe":
                session.subscriptions.add((ours, s))
            else:
                session.subscriptions.discard((ours, s))
        self._reply(session, channel, event, None)

    def _size(self, lots: int, decimal: bool) -> int | str:
        return str(lots) if decimal else lots

    def _lots(self, step: MarketStep, size: str) -> int:
        return round(float(size) * 10**step.model.size_decimals)

    def _levels(self, step: MarketStep, levels: list[tuple[str, str]], decimal: bool) -> list[Any]:
        if not self.futures:
            return [list(level) for level in levels]
        return [{"p": p, "s": self._size(self._lots(step, s), decimal)} for p, s in levels]

    def _push(self, name: str, step: MarketStep, result: Any) -> str:
        ms = step.ts_ns // 1_000_000
        return _dumps(
            {
                "time": ms // 1000,
                "time_ms": ms,
                "channel": f"{self.prefix}.{name}",
                "event": "update",
                "result": result,
            }
        )

    def _spot_trade(self, step: MarketStep, t: SimTrade) -> dict[str, Any]:
        ns = step.ts_ns
        return {
            "id": t.trade_id,
            "create_time": ns // 1_000_000_000,
            "create_time_ms": f"{ns // 1_000_000}.{(ns // 100) % 10_000:04d}",
            "side": t.side,
            "currency_pair": step.symbol,
            "amount": t.size,
            "price": t.price,
            "range": f"{t.trade_id}-{t.trade_id}",
            "id_market": t.trade_id - 5_000_000,
        }

    def _futures_trade(self, step: MarketStep, t: SimTrade, decimal: bool) -> dict[str, Any]:
        lots = self._lots(step, t.size)
        return {
            "size": self._size(-lots if t.side == "sell" else lots, decimal),
            "id": t.trade_id,
            "create_time": step.ts_ns // 1_000_000_000,
            "create_time_ms": step.ts_ns // 1_000_000,
            "price": t.price,
            "contract": step.symbol,
            "is_internal": False,
        }

    def step_frames(self, step: MarketStep, decimal: bool) -> StepFrames:
        """Frames of one market step for a fully subscribed client (rendered once per step and mode)."""
        cached = self._rendered.get(decimal)
        if cached is not None and cached[0] is step:
            return cached[1]
        ms = step.ts_ns // 1_000_000
        if self.futures:
            items = [self._futures_trade(step, t, decimal) for t in step.trades]
            trades = [self._push("trades", step, items)] if items else []
        else:
            trades = [self._push("trades", step, self._spot_trade(step, t)) for t in step.trades]
        update: dict[str, Any] = {"t": ms, "s": step.symbol, "U": step.first_update_id, "u": step.update_id}
        if not self.futures:
            update.update({"e": "depthUpdate", "E": ms // 1000})
        update.update(
            {
                "b": self._levels(step, step.bids, decimal),
                "a": self._levels(step, step.asks, decimal),
                "l": "100",
            }
        )
        book = [self._push("order_book_update", step, update)]
        (bp, bq), (ap, aq) = step.model.best()
        bid_size: Any = bq
        ask_size: Any = aq
        if self.futures:
            bid_size = self._size(self._lots(step, bq), decimal)
            ask_size = self._size(self._lots(step, aq), decimal)
        ticker = {
            "t": ms,
            "u": step.update_id,
            "s": step.symbol,
            "b": bp,
            "B": bid_size,
            "a": ap,
            "A": ask_size,
        }
        bbo = [self._push("book_ticker", step, ticker)]
        tickers, liquidations = self._derivative_frames(step, decimal) if self.futures else ([], [])
        frames = (trades, book, bbo, tickers, liquidations)
        self._rendered[decimal] = (step, frames)
        return frames

    def _derivative_frames(self, step: MarketStep, decimal: bool) -> tuple[list[str], list[str]]:
        """A ``futures.tickers`` push when one is due, and a ``futures.public_liquidates`` push when
        a trade of this step is a liquidation."""
        tickers = []
        if self._ticker_due.get(step.symbol) is step:
            (bp, _), (ap, _) = step.model.best()
            mid = (float(bp) + float(ap)) / 2
            item = {
                "contract": step.symbol,
                "last": step.trades[-1].price if step.trades else bp,
                "mark_price": f"{mid:.2f}",
                "index_price": f"{mid * 0.9999:.2f}",
                "funding_rate": "0.0001" if step.update_id % 2 else "-0.00005",
                "funding_rate_indicative": "0.00008",
                "total_size": str(50_000 + step.update_id % 9_973),
                "quanto_base_rate": "",
            }
            tickers.append(self._push("tickers", step, [item]))
        ms = step.ts_ns // 1_000_000
        items = [
            {
                "price": t.price,
                "size": self._size(self._lots(step, t.size) * (-1 if t.side == "sell" else 1), decimal),
                "time": ms,
                "contract": step.symbol,
            }
            for t in step.trades
            if t.trade_id % LIQUIDATION_EVERY == 0
        ]
        liquidations = [self._push("public_liquidates", step, items)] if items else []
        return tickers, liquidations

    def publish_step(self, step: MarketStep) -> None:
        if self.futures:
            second = step.ts_ns // 1_000_000_000
            if self._ticker_second.get(step.symbol) != second:  # a ticker push about once a second
                self._ticker_second[step.symbol] = second
                self._ticker_due[step.symbol] = step
        super().publish_step(step)

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        trades, book, bbo, tickers, liquidations = self.step_frames(step, bool(session.state.get("decimal")))
        sym = step.symbol
        bbo = bbo if session.subscribed("bbo", sym) else []
        if tickers and session.subscribed("ticker", sym):
            bbo = bbo + tickers
        if liquidations and session.subscribed("liquidations", sym):
            bbo = bbo + liquidations
        return (
            trades if session.subscribed("trades", sym) else [],
            book if session.subscribed("book", sym) else [],
            bbo,
        )

    # -- REST --------------------------------------------------------------------------------------
    def snapshot_body(self, symbol: str, limit: int, with_id: bool) -> dict[str, Any]:
        """The REST order book of a symbol (spot: ms times and ``[p, s]``; futures: seconds and ``{p, s}``)."""
        model = self.markets[symbol]
        bids, asks = model.top(limit)
        now_ns = self.now_exchange_ns()
        body: dict[str, Any] = {}
        if with_id:
            body["id"] = model.update_id
        if self.futures:
            body["current"] = round(now_ns / 1e9, 3)
            body["update"] = round(now_ns / 1e9, 3)
            body["asks"] = [{"p": p, "s": round(float(s) * 10**model.size_decimals)} for p, s in asks]
            body["bids"] = [{"p": p, "s": round(float(s) * 10**model.size_decimals)} for p, s in bids]
        else:
            body["current"] = now_ns // 1_000_000
            body["update"] = now_ns // 1_000_000
            body["asks"] = [list(a) for a in asks]
            body["bids"] = [list(b) for b in bids]
        return body

    async def order_book_handler(self, request: web.Request) -> web.Response:
        """``GET .../order_book?<pair or contract>=S&limit=N&with_id=true``."""
        self.rest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        symbol = request.query.get(self.gate.snapshot_symbol_param, "")
        if symbol not in self.markets:
            return web.json_response(
                {"label": "INVALID_CURRENCY_PAIR", "message": f"unknown {symbol[:40]!r}"}, status=400
            )
        try:
            limit = min(1000, max(1, int(request.query.get("limit", "10"))))
        except ValueError:
            return web.json_response({"label": "INVALID_PARAM_VALUE", "message": "limit"}, status=400)
        body = self.snapshot_body(symbol, limit, request.query.get("with_id") == "true")
        return web.json_response(body, dumps=_dumps)

    def instrument_routes(self) -> list[web.RouteDef]:
        spot = self.dialect.exchange_id == "gate"
        path = spot_instruments.GATE_PATH if spot else htx_gate_instruments.GATE_FUTURES_PATH
        return [web.get(path, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """The venue's instrument list (spot pairs or USDT contracts): this simulator's markets."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        if self.dialect.exchange_id == "gate":
            body: Any = spot_instruments.gate_body(self.markets)
        else:
            body = htx_gate_instruments.gate_contracts_body(self.markets)
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def rest_routes(self) -> list[web.RouteDef]:
        return [web.get(self.gate.snapshot_path, self.order_book_handler)]
