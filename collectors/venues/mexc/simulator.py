"""MEXC spot on loopback: JSON requests and replies, binary protobuf pushes, REST ``/api/v3/depth``.

Pushes are ``PushDataV3ApiWrapper`` messages encoded by :mod:`.protobuf` (the same field numbers the
client decodes) and sent as binary websocket frames. The rendering pipeline of
:class:`ExchangeSimulator` carries text, so a push travels it as the Latin-1 text of its bytes (its first
byte, the ``channel`` field's tag 0x0A, is a newline, which no JSON reply starts with) and :meth:`send`
turns it back into a binary frame.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ...simulator import ClientSession, ExchangeSimulator, MarketStep
from . import instruments as mexc_instruments
from . import protobuf as pb
from .client import CHANNEL_NAMES, INTERVAL

#: a rendered push starts with the wrapper's first tag byte (field 1, length-delimited)
PUSH_MARK = "\n"
MAX_SUBSCRIPTIONS = 30
_OURS = {wire: ours for ours, wire in CHANNEL_NAMES.items()}


def _as_text(data: bytes) -> str:
    assert data[:1] == PUSH_MARK.encode()
    return data.decode("latin-1")


class MexcSimulator(ExchangeSimulator):
    """MEXC spot v3 websocket and depth REST on loopback."""

    ws_paths = ("/ws",)

    def __init__(self, dialect: Any, config: Any) -> None:
        super().__init__(dialect, config)
        self._step: MarketStep | None = None
        self._frames: dict[str, str | None] = {}
        #: per symbol, the last push's sendTime: MEXC pushes a symbol's aggregate every 100 ms, so two
        #: pushes never share a sendTime (the normaliser's trade ids rely on it); steps that a fast or
        #: loaded simulator makes within one millisecond get the next one
        self._last_ms: dict[str, int] = {}

    def send(self, session: ClientSession, frame: str | bytes) -> None:
        if isinstance(frame, str) and frame.startswith(PUSH_MARK):
            frame = frame.encode("latin-1")
        super().send(session, frame)

    def reply(self, session: ClientSession, msg: str, code: int = 0) -> None:
        self.send(session, orjson.dumps({"id": 0, "code": code, "msg": msg}).decode())

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.reply(session, "Invalid JSON", 1)
            return
        method = req.get("method") if isinstance(req, dict) else None
        if method == "PING":
            self.reply(session, "PONG")
            return
        if method not in ("SUBSCRIPTION", "UNSUBSCRIPTION"):
            self.reply(session, "Invalid method", 1)
            return
        params = req.get("params")
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            self.reply(session, "Invalid params", 1)
            return
        done = []
        for param in params:
            channel, _, rest = param.rpartition("@")  # channel@interval, symbol
            wire, _, interval = channel.rpartition("@")
            ours = _OURS.get(wire)
            if ours is None or interval not in ("100ms", "10ms") or rest not in self.markets:
                self.reply(session, f"Not Subscribed successfully! [{param}]. Reason: invalid", 0)
                continue
            key = (ours, rest)
            if method == "UNSUBSCRIPTION":
                session.subscriptions.discard(key)
            elif key not in session.subscriptions and len(session.subscriptions) >= MAX_SUBSCRIPTIONS:
                self.reply(session, f"Not Subscribed successfully! [{param}]. Reason: too many", 0)
                continue
            else:
                session.subscriptions.add(key)
            done.append(param)
        if done:
            self.reply(session, ",".join(done))

    def step_frames(self, step: MarketStep) -> dict[str, str | None]:
        """One push per stream for a market step, encoded once for every client."""
        if self._step is step:
            return self._frames
        symbol = step.symbol
        ms = max(step.ts_ns // 1_000_000, self._last_ms.get(symbol, 0) + 1)
        self._last_ms[symbol] = ms
        frames: dict[str, str | None] = {"trades": None, "book": None, "bbo": None}
        if step.trades:
            deals = pb.AggreDeals(
                deals=[pb.Deal(t.price, t.size, 1 if t.side == "buy" else 2, ms) for t in step.trades],
                event_type=f"{CHANNEL_NAMES['trades']}@{INTERVAL}",
            )
            frames["trades"] = self._push("trades", symbol, ms, deals)
        depth = pb.AggreDepths(
            asks=[pb.DepthLevel(p, q) for p, q in step.asks],
            bids=[pb.DepthLevel(p, q) for p, q in step.bids],
            event_type=f"{CHANNEL_NAMES['book']}@{INTERVAL}",
            from_version=str(step.first_update_id),
            to_version=str(step.update_id),
        )
        frames["book"] = self._push("book", symbol, ms, depth)
        (bp, bq), (ap, aq) = step.model.best()
        frames["bbo"] = self._push("bbo", symbol, ms, pb.AggreBookTicker(bp, bq, ap, aq))
        self._step, self._frames = step, frames
        return frames

    @staticmethod
    def _push(ours: str, symbol: str, ms: int, body: Any) -> str:
        channel = f"{CHANNEL_NAMES[ours]}@{INTERVAL}@{symbol}"
        return _as_text(pb.encode_push(pb.Push(channel=channel, symbol=symbol, send_time=ms, body=body)))

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.step_frames(step)
        out: list[list[str]] = []
        for ours in ("trades", "book", "bbo"):
            frame = frames[ours]
            out.append([frame] if frame is not None and session.subscribed(ours, step.symbol) else [])
        return out[0], out[1], out[2]

    async def depth_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v3/depth?symbol=S&limit=N`` (``limit`` up to 5000)."""
        self.rest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        symbol = request.query.get("symbol", "")
        if symbol not in self.markets:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = min(5000, max(1, int(request.query.get("limit", "100"))))
        except ValueError:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters found in parameter 'limit'"}, status=400
            )
        model = self.markets[symbol]
        bids, asks = model.top(limit)
        body = {
            "lastUpdateId": model.update_id,
            "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks],
            "timestamp": self.now_exchange_ns() // 1_000_000,
        }
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def rest_routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v3/depth", self.depth_handler)]

    def instrument_routes(self) -> list[web.RouteDef]:
        return [web.get(mexc_instruments.PATH, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v3/exchangeInfo``: this simulator's markets."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        body = mexc_instruments.exchange_info_body(self.markets, self.now_exchange_ns() // 1_000_000)
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())
