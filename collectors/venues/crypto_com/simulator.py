"""The simulator side of Crypto.com Exchange v1 market data (protocol in :mod:`.client`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from ...base import ExchangeDialect
from ...simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import instruments as crypto_com_instruments
from .client import WS_PATH, index_name, is_derivative

if TYPE_CHECKING:
    from aiohttp import web


class CryptoComSimulator(ExchangeSimulator):
    """Crypto.com v1 market data on loopback: ``/exchange/v1/market``, delta books, heartbeats."""

    ws_paths = (WS_PATH,)
    #: market steps (about) between two pushes of the derivatives values
    VALUES_EVERY = 5

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.heartbeats_answered = 0
        #: seconds between each connection's opening and its first request
        self.first_request_after_s: list[float] = []

    async def on_open(self, session: ClientSession) -> None:
        session.state["opened"] = time.monotonic()

    def push(self, session: ClientSession, native: str, subscription: str, channel: str, data: Any) -> str:
        result = {"instrument_name": native, "subscription": subscription, "channel": channel, "data": data}
        if channel.startswith("book"):
            result["depth"] = int(subscription.rsplit(".", 1)[1])
        return orjson.dumps({"id": -1, "method": "subscribe", "code": 0, "result": result}).decode()

    def error(self, session: ClientSession, msg_id: Any, method: Any, code: int, message: str) -> None:
        self.send(
            session, orjson.dumps({"id": msg_id, "method": method, "code": code, "message": message}).decode()
        )

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.error(session, -1, None, 10004, "BAD_REQUEST")
            return
        if not isinstance(msg, dict):
            self.error(session, -1, None, 10004, "BAD_REQUEST")
            return
        opened = session.state.pop("opened", None)
        if opened is not None:
            self.first_request_after_s.append(time.monotonic() - opened)
        msg_id, method = msg.get("id"), msg.get("method")
        if method == "public/respond-heartbeat":
            self.heartbeats_answered += 1
            return
        params = msg.get("params")
        channels = params.get("channels") if isinstance(params, dict) else None
        if method not in ("subscribe", "unsubscribe") or not isinstance(channels, list):
            self.error(session, msg_id, method, 10004, "BAD_REQUEST")
            return
        parsed = []
        for name in channels:
            kind, native, depth = self.parse_channel(name)
            if kind is None:
                self.error(session, msg_id, method, 40003, f"invalid channel {str(name)[:60]}")
                return
            parsed.append((name, kind, native, depth))
        for name, kind, native, depth in parsed:
            if method == "subscribe":
                session.subscriptions.add((kind, native))
                session.state[f"{kind}:{native}"] = name
                if kind == "book":
                    self.send_snapshot(session, native, name, depth)
            else:
                session.subscriptions.discard((kind, native))
        self.send(session, orjson.dumps({"id": msg_id, "method": method, "code": 0}).decode())

    def parse_channel(self, name: Any) -> tuple[str | None, str, int]:
        if not isinstance(name, str):
            return None, "", 0
        parts = name.split(".")
        if len(parts) == 2 and parts[0] in ("trade", "ticker") and parts[1] in self.markets:
            return parts[0], parts[1], 0
        if (
            len(parts) == 2
            and parts[0] in ("funding", "estimatedfunding", "mark")
            and parts[1] in self.markets
        ):
            return (parts[0], parts[1], 0) if is_derivative(parts[1]) else (None, "", 0)
        if len(parts) == 2 and parts[0] == "index":
            perp = next((m for m in self.markets if is_derivative(m) and index_name(m) == parts[1]), None)
            if perp is not None:
                return "index", perp, 0
        if len(parts) == 3 and parts[0] == "book" and parts[1] in self.markets and parts[2] in ("10", "50"):
            return "book", parts[1], int(parts[2])
        return None, "", 0

    def send_snapshot(self, session: ClientSession, native: str, name: str, depth: int) -> None:
        model = self.markets[native]
        bids, asks = model.top(depth)
        ms = self.now_exchange_ns() // 1_000_000
        entry = {
            "bids": [[p, s, "1"] for p, s in bids],
            "asks": [[p, s, "1"] for p, s in asks],
            "t": ms,
            "tt": ms,
            "u": model.update_id,
        }
        session.state[f"u:{native}"] = model.update_id
        self.send(session, self.push(session, native, name, "book", [entry]))

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        return [f'{{"id":{now_ns // 1_000_000},"method":"public/heartbeat","code":0}}']

    def instrument_routes(self) -> list[web.RouteDef]:
        """``public/get-instruments`` listing the simulator's markets."""
        return self.instruments_routes_of(
            [crypto_com_instruments.PATH], lambda: crypto_com_instruments.get_instruments_body(self.markets)
        )

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        native, ms = step.symbol, step.ts_ns // 1_000_000
        trades: list[str] = []
        if step.trades and session.subscribed("trade", native):
            data = [
                {"d": str(t.trade_id), "t": ms, "p": t.price, "q": t.size, "s": t.side.upper(), "i": native}
                for t in reversed(step.trades)  # newest first, as the venue sends
            ]
            trades.append(self.push(session, native, f"trade.{native}", "trade", data))
        book: list[str] = []
        if session.subscribed("book", native):
            prev = session.state.get(f"u:{native}")
            if prev is not None:
                session.state[f"u:{native}"] = step.update_id
                entry = {
                    "update": {
                        "bids": [[p, s, "0" if float(s) == 0 else "1"] for p, s in step.bids],
                        "asks": [[p, s, "0" if float(s) == 0 else "1"] for p, s in step.asks],
                    },
                    "t": ms,
                    "tt": ms,
                    "u": step.update_id,
                    "pu": prev,
                    "cs": 0,
                }
                name = session.state[f"book:{native}"]
                book.append(self.push(session, native, name, "book.update", [entry]))
        other: list[str] = []
        (bp, bq), (ap, aq) = step.model.best()
        if session.subscribed("ticker", native):
            entry = {"i": native, "b": bp, "bs": bq, "k": ap, "ks": aq, "t": ms, "a": bp, "v": "1000.0"}
            entry["oi"] = f"{1000 + step.update_id % 997:.4f}" if is_derivative(native) else "0"
            other.append(self.push(session, native, f"ticker.{native}", "ticker", [entry]))
        if is_derivative(native) and step.first_update_id % self.VALUES_EVERY == 0:
            mid = (float(bp) + float(ap)) / 2
            second = ms - ms % 1000
            values = (
                ("index", index_name(native), f"{mid * 0.9999:.2f}", second),
                ("mark", native, f"{mid:.2f}", second),
                ("estimatedfunding", native, "-0.000006242", second),
                ("funding", native, "0.0000125", second - second % 60_000),
            )
            for kind, name, value, t in values:
                if session.subscribed(kind, native):
                    other.append(self.push(session, name, f"{kind}.{name}", kind, [{"v": value, "t": t}]))
        return trades, book, other
