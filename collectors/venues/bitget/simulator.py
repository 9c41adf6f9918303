"""Simulator side of Bitget's public websocket v2 (both ``bitget`` and ``bitget-futures``).

Serves ``/v2/ws/public``: text ``ping`` -> ``pong``; ``subscribe``/``unsubscribe`` requests with
``{instType, channel, instId}`` arguments (an unknown one is answered with an ``error`` event, code
30001); ``books`` as a checksummed snapshot on subscribe then updates carrying ``seq``/``pseq``;
``books1`` and ``ticker`` pushes for the best bid/offer (on futures the ticker also carries
``markPrice``, ``indexPrice``, ``fundingRate``, ``nextFundingTime`` and ``holdingAmount``); ``trade``
with the recent trades as a snapshot on subscribe (as Bitget does, so a reconnecting client sees trades
it already stored). Futures also serve the unified-account endpoint ``/v3/ws/public`` with its
``liquidation`` topic (``{"instType": "usdt-futures", "topic": "liquidation"}``, every symbol): one
push per liquidated trade (one trade id in :data:`LIQUIDATION_EVERY`), at most one per symbol, position
side and second, as Bitget aggregates them; ``amount`` in the quote coin.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ...book import ASK, BID, L2Book
from ...checksum import to_signed32
from ...simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimulatorConfig
from . import instruments as bitget_instruments
from .client import BOOK_CHANNEL, CHECKSUM_DEPTH, LIQUIDATION_TOPIC, V3_PATH, WS_PATH, bitget_checksum

if TYPE_CHECKING:
    from .client import BitgetDialect

#: Bitget channel name -> our channel
SIM_CHANNELS = {"trade": "trades", "books": "book", "books1": "bbo", "ticker": "ticker"}
#: Recent trades sent in the snapshot of a trade subscription.
TRADE_SNAPSHOT_SIZE = 50
#: futures: one trade in this many (by id) comes with a liquidation
LIQUIDATION_EVERY = 4


def model_checksum(model: MarketModel) -> int:
    """Bitget's checksum of a simulated market's current book (its best 25 levels per side)."""
    book = L2Book()
    bids, asks = model.top(CHECKSUM_DEPTH)
    for side, levels in ((BID, bids), (ASK, asks)):
        for p, s in levels:
            book.set_level(side, float(p), float(s), p, s)
    return bitget_checksum(book)


class BitgetSimulator(ExchangeSimulator):
    """Bitget public v2 on loopback (see the module docstring)."""

    ws_paths: tuple[str, ...] = (WS_PATH,)

    def __init__(self, dialect: BitgetDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.inst_type = dialect.inst_type
        self.futures = dialect.normaliser_class.derivatives
        #: instId -> recent trades, newest first: {ts, price, size, side, tradeId}
        self.recent_trades: dict[str, deque[dict[str, str]]] = {
            s: deque(maxlen=TRADE_SNAPSHOT_SIZE) for s in self.markets
        }
        self._rendered: tuple[MarketStep, dict[str, list[str]]] | None = None
        #: text pings received (and answered ``pong``)
        self.pings = 0
        #: the v3 liquidation topic's instType (futures), or None
        self.liquidation_inst_type = dialect.normaliser_class.liquidation_inst_type
        if self.liquidation_inst_type is not None:
            self.ws_paths = (WS_PATH, V3_PATH)
        #: (symbol, position side) -> the second of its last liquidation push
        self._liquidation_second: dict[tuple[str, str], int] = {}

    def instrument_routes(self) -> list[web.RouteDef]:
        path = bitget_instruments.SPOT_PATH if self.inst_type == "SPOT" else bitget_instruments.CONTRACTS_PATH
        return [web.get(path, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """The spot symbols or the contracts of ``productType`` (this simulator's markets)."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        if self.inst_type != "SPOT" and request.query.get("productType", "").upper() != self.inst_type:
            return web.json_response({"code": "40019", "msg": "Parameter productType error", "data": None})
        return web.json_response(bitget_instruments.symbols_body(self.inst_type, self.markets))

    def _push(self, action: str, channel: str, inst_id: str, data: list[Any], ms: int) -> str:
        arg = {"instType": self.inst_type, "channel": channel, "instId": inst_id}
        return orjson.dumps({"action": action, "arg": arg, "data": data, "ts": ms}).decode()

    # -- client requests -------------------------------------------------------------------------
    async def on_message(self, session: ClientSession, text: str) -> None:
        if text == "ping":
            self.pings += 1
            self.send(session, "pong")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        op = msg.get("op") if isinstance(msg, dict) else None
        args = msg.get("args") if isinstance(msg, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
            self.send(session, '{"event":"error","code":30004,"msg":"op not exist"}')
            return
        if session.request.path == V3_PATH:
            self.on_v3_request(session, op, args)
            return
        for arg in args:
            if not isinstance(arg, dict):
                self.send(session, '{"event":"error","code":30004,"msg":"args not valid"}')
                continue
            channel, inst_id = arg.get("channel"), arg.get("instId")
            ours = SIM_CHANNELS.get(str(channel))
            if ours is None or inst_id not in self.markets or arg.get("instType") != self.inst_type:
                error = {
                    "event": "error",
                    "arg": arg,
                    "code": 30001,
                    "msg": f"instType:{arg.get('instType')},channel:{channel},instId:{inst_id} doesn't exist",
                }
                self.send(session, orjson.dumps(error).decode())
                continue
            if op == "unsubscribe":
                session.subscriptions.discard((ours, inst_id))
                self.send(session, orjson.dumps({"event": "unsubscribe", "arg": arg}).decode())
                continue
            session.subscriptions.add((ours, inst_id))
            self.send(session, orjson.dumps({"event": "subscribe", "arg": arg}).decode())
            ms = self.now_exchange_ns() // 1_000_000
            if channel == BOOK_CHANNEL:
                self.send(session, self.book_snapshot_frame(inst_id, ms))
            elif channel == "trade" and self.recent_trades[inst_id]:
                trades = list(self.recent_trades[inst_id])
                self.send(session, self._push("snapshot", "trade", inst_id, trades, ms))

    def on_v3_request(self, session: ClientSession, op: str, args: list[Any]) -> None:
        """``/v3/ws/public``: only the ``liquidation`` topic of this simulator's instType is served."""
        for arg in args:
            if (
                not isinstance(arg, dict)
                or arg.get("topic") != LIQUIDATION_TOPIC
                or arg.get("instType") != self.liquidation_inst_type
            ):
                error = {"event": "error", "arg": arg, "code": 30001, "msg": "topic doesn't exist"}
                self.send(session, orjson.dumps(error).decode())
                continue
            for sym in self.markets:
                (session.subscriptions.add if op == "subscribe" else session.subscriptions.discard)(
                    ("liquidation", sym)
                )
            self.send(session, orjson.dumps({"event": op, "arg": arg, "connId": "sim"}).decode())

    # -- frames ----------------------------------------------------------------------------------
    def book_snapshot_frame(self, inst_id: str, ms: int) -> str:
        """A ``books`` snapshot of the current market, with its checksum and sequence."""
        model = self.markets[inst_id]
        bids, asks = model.top()
        entry = {
            "asks": [[p, s] for p, s in asks],
            "bids": [[p, s] for p, s in bids],
            "checksum": model_checksum(model),
            "seq": model.update_id,
            "ts": str(ms),
        }
        return self._push("snapshot", BOOK_CHANNEL, inst_id, [entry], ms)

    def step_frames(self, step: MarketStep) -> dict[str, list[str]]:
        """Frames of one market step per Bitget channel (rendered once, shared by every client)."""
        if self._rendered is not None and self._rendered[0] is step:
            return self._rendered[1]
        inst_id, ms, model = step.symbol, step.ts_ns // 1_000_000, step.model
        frames: dict[str, list[str]] = {"trade": []}
        if step.trades:
            # newest first, as Bitget lists trades
            data = [
                {"ts": str(ms), "price": t.price, "size": t.size, "side": t.side, "tradeId": str(t.trade_id)}
                for t in reversed(step.trades)
            ]
            for trade in reversed(data):
                self.recent_trades[inst_id].appendleft(trade)
            frames["trade"].append(self._push("update", "trade", inst_id, data, ms))
        checksum = model_checksum(model)
        if step.corrupt_checksum:
            checksum = to_signed32(checksum ^ 0x5A5A5A5A)
        update = {
            "asks": [[p, s] for p, s in step.asks],
            "bids": [[p, s] for p, s in step.bids],
            "checksum": checksum,
            "seq": step.update_id,
            "pseq": step.first_update_id - 1,
            "ts": str(ms),
        }
        frames["books"] = [self._push("update", BOOK_CHANNEL, inst_id, [update], ms)]
        (bp, bq), (ap, aq) = model.best()
        top = {"asks": [[ap, aq]], "bids": [[bp, bq]], "checksum": 0, "seq": step.update_id, "ts": str(ms)}
        frames["books1"] = [self._push("snapshot", "books1", inst_id, [top], ms)]
        last = self.recent_trades[inst_id][0]["price"] if self.recent_trades[inst_id] else bp
        ticker = {
            "instId": inst_id,
            "lastPr": last,
            "bidPr": bp,
            "askPr": ap,
            "bidSz": bq,
            "askSz": aq,
            "ts": str(ms),
        }
        if self.futures:
            mid = (float(bp) + float(ap)) / 2
            interval_ms = 8 * 3600 * 1000
            ticker.update(
                {
                    "fundingRate": "0.0001" if step.update_id % 2 else "-0.00005",
                    "nextFundingTime": str((ms // interval_ms + 1) * interval_ms),
                    "markPrice": f"{mid:.2f}",
                    "indexPrice": f"{mid * 0.9999:.2f}",
                    "holdingAmount": f"{5_000 + step.update_id % 997 / 100:.2f}",
                }
            )
        frames["ticker"] = [self._push("snapshot", "ticker", inst_id, [ticker], ms)]
        frames["liquidation"] = self.liquidation_frames(step, ms) if self.liquidation_inst_type else []
        self._rendered = (step, frames)
        return frames

    def liquidation_frames(self, step: MarketStep, ms: int) -> list[str]:
        """v3 ``liquidation`` pushes of a step: a liquidated trade's price and its quote amount, the
        liquidated position's side (a sell order closes a long: ``buy``)."""
        frames = []
        for t in step.trades:
            side = "buy" if t.side == "sell" else "sell"
            key = (step.symbol, side)
            if t.trade_id % LIQUIDATION_EVERY or self._liquidation_second.get(key) == ms // 1000:
                continue
            self._liquidation_second[key] = ms // 1000
            record = {
                "symbol": step.symbol,
                "side": side,
                "price": t.price,
                "amount": f"{float(t.price) * float(t.size):.6f}",
                "ts": str(ms),
            }
            arg = {"instType": self.liquidation_inst_type, "topic": LIQUIDATION_TOPIC}
            frames.append(orjson.dumps({"data": [record], "arg": arg, "action": "update", "ts": ms}).decode())
        return frames

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.step_frames(step)
        sym = step.symbol
        top = frames["books1"] if session.subscribed("bbo", sym) else []
        if session.subscribed("ticker", sym):
            top = top + frames["ticker"]
        if session.subscribed("liquidation", sym):
            top = top + frames["liquidation"]
        return (
            frames["trade"] if session.subscribed("trades", sym) else [],
            frames["books"] if session.subscribed("book", sym) else [],
            top,
        )
