"""Coinbase International Exchange on loopback: signature check, one ``sequence`` per session.

The simulator speaks what :mod:`.client` reads (the documented INTX messages): a ``SUBSCRIBE`` must carry
a valid signature the first time on a connection (else ``REJECT`` and the connection is closed); each
subscription is answered with its channel's ``SNAPSHOT`` (``MATCH`` has none) and a ``SUBSCRIPTIONS``
confirmation without a sequence; every other message carries the session's next ``sequence``.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

import orjson

from ...base import ExchangeDialect
from ...events import ns_to_iso
from ...simulator import ClientSession, ExchangeSimulator, MarketStep, SimulatorConfig
from . import instruments
from .client import Credentials, sign

if TYPE_CHECKING:
    from aiohttp import web

_OURS = {
    "MATCH": ("trades",),
    "LEVEL2": ("book",),
    "LEVEL1": ("bbo",),
    "FUNDING": ("funding",),
    "RISK": ("risk",),
}


class CoinbaseInternationalSimulator(ExchangeSimulator):
    """INTX on loopback: signature check, one ``sequence`` per session over every channel."""

    ws_paths = ("/",)

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig, credentials: Credentials) -> None:
        super().__init__(dialect, config)
        self.credentials = credentials
        self.rejected = 0
        self._step: MarketStep | None = None
        self._bodies: dict[str, dict[str, Any] | None] = {}

    def instrument_routes(self) -> list[web.RouteDef]:
        """``GET /api/v1/instruments`` (public, as on INTX): this simulator's markets."""
        return self.instruments_routes_of(
            [instruments.PATH], lambda: instruments.instruments_body(self.markets)
        )

    def message(self, session: ClientSession, body: dict[str, Any]) -> str:
        seq = session.state.get("seq", 0)
        session.state["seq"] = seq + 1
        return orjson.dumps({"sequence": seq, **body}).decode()

    def reject(self, session: ClientSession, reason: str) -> None:
        self.rejected += 1
        self.send(session, orjson.dumps({"type": "REJECT", "message": "rejected", "reason": reason}).decode())

    def _authentic(self, msg: dict[str, Any]) -> bool:
        t, key, passphrase, signature = (msg.get(k) for k in ("time", "key", "passphrase", "signature"))
        if not all(isinstance(v, str) for v in (t, key, passphrase, signature)):
            return False
        assert isinstance(t, str) and isinstance(signature, str)
        if not t.isdigit() or abs(int(t) - time.time()) > 30:
            return False
        c = self.credentials
        if key != c.key or passphrase != c.passphrase:
            return False
        return hmac.compare_digest(signature, sign(t, c.key, c.passphrase, c.secret))

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.reject(session, "malformed JSON")
            return
        if not isinstance(msg, dict) or msg.get("type") not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self.reject(session, "unknown request type")
            return
        kind = msg["type"]
        if kind == "SUBSCRIBE" and not session.state.get("authenticated"):
            if not self._authentic(msg):
                self.reject(session, "authentication failed")
                self.sessions.discard(session)  # no market data; the writer closes after the REJECT
                session.queue.put_nowait(None)
                return
            session.state["authenticated"] = True
        products, channels = msg.get("product_ids"), msg.get("channels")
        if not isinstance(products, list) or not isinstance(channels, list):
            self.reject(session, "product_ids and channels must be lists")
            return
        if any(p not in self.markets for p in products) or any(c not in _OURS for c in channels):
            self.reject(session, "unknown product or channel")
            return
        now = ns_to_iso(self.now_exchange_ns(), 3)
        for channel in channels:
            for product in products:
                for ours in _OURS[channel]:
                    if kind == "UNSUBSCRIBE":
                        session.subscriptions.discard((ours, product))
                        continue
                    session.subscriptions.add((ours, product))
                    snapshot = self.snapshot(ours, product, now)
                    if snapshot is not None:
                        self.send(session, self.message(session, snapshot))
        subs: dict[str, list[str]] = {}
        for ours, product in sorted(session.subscriptions):
            wire = {v[0]: k for k, v in _OURS.items()}[ours]
            subs.setdefault(wire, []).append(product)
        confirmation = {
            "channels": [{"name": k, "product_ids": v} for k, v in subs.items()],
            "authenticated": True,
            "channel": "SUBSCRIPTIONS",
            "type": "SNAPSHOT",
            "time": now,
        }
        self.send(session, orjson.dumps(confirmation).decode())

    def _risk(self, product: str, ts: str, kind: str) -> dict[str, Any]:
        model = self.markets[product]
        (bp, _), (ap, _) = model.best()
        mid = (float(bp) + float(ap)) / 2
        return {
            "product_id": product,
            "time": ts,
            "limit_up": model.price_str(round(mid * 1.05 / model.tick)),
            "limit_down": model.price_str(round(mid * 0.95 / model.tick)),
            "index_price": model.price_str(round(mid / model.tick)),
            "mark_price": model.price_str(round(mid / model.tick)),
            "settlement_price": model.price_str(round(mid / model.tick)),
            "open_interest": f"{1000 + model.trade_id % 977}",
            "channel": "RISK",
            "type": kind,
        }

    @staticmethod
    def _funding(product: str, ts: str, kind: str, rate: int, final: bool) -> dict[str, Any]:
        return {
            "product_id": product,
            "time": ts,
            "funding_rate": f"{rate / 1_000_000:.6f}",
            "is_final": final,
            "channel": "FUNDING",
            "type": kind,
        }

    @staticmethod
    def _level1(product: str, ts: str, kind: str, model: Any) -> dict[str, Any]:
        (bp, bq), (ap, aq) = model.best()
        return {
            "product_id": product,
            "time": ts,
            "bid_price": bp,
            "bid_qty": bq,
            "ask_price": ap,
            "ask_qty": aq,
            "channel": "LEVEL1",
            "type": kind,
        }

    def snapshot(self, ours: str, product: str, now: str) -> dict[str, Any] | None:
        model = self.markets[product]
        if ours == "book":
            bids, asks = model.top(20)
            return {
                "product_id": product,
                "time": now,
                "bids": [list(b) for b in bids],
                "asks": [list(a) for a in asks],
                "channel": "LEVEL2",
                "type": "SNAPSHOT",
            }
        if ours == "bbo":
            return self._level1(product, now, "SNAPSHOT", model)
        if ours == "funding":
            return self._funding(product, now, "SNAPSHOT", 100 + model.update_id % 50, True)
        if ours == "risk":
            return self._risk(product, now, "SNAPSHOT")
        return None  # MATCH sends no snapshot

    def step_bodies(self, step: MarketStep) -> dict[str, Any]:
        if self._step is step:
            return self._bodies
        product, model = step.symbol, step.model
        ts = ns_to_iso(step.ts_ns, 3)
        changes = [["BUY", p, q] for p, q in step.bids] + [["SELL", p, q] for p, q in step.asks]
        bodies: dict[str, Any] = {
            "trades": [
                {
                    "product_id": product,
                    "time": ts,
                    "match_id": str(t.trade_id),
                    "trade_qty": t.size,
                    "aggressor_side": t.side.upper(),
                    "trade_price": t.price,
                    "channel": "MATCH",
                    "type": "UPDATE",
                }
                for t in step.trades
            ],
            "book": {
                "product_id": product,
                "time": ts,
                "changes": changes,
                "channel": "LEVEL2",
                "type": "UPDATE",
            },
            "bbo": self._level1(product, ts, "UPDATE", model),
            "funding": None,
            "risk": None,
        }
        if step.update_id % 7 == 0:
            bodies["funding"] = self._funding(product, ts, "UPDATE", 90 + step.update_id % 40, False)
        if step.update_id % 5 == 0:
            bodies["risk"] = self._risk(product, ts, "UPDATE")
        self._step, self._bodies = step, bodies
        return bodies

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        bodies = self.step_bodies(step)
        product = step.symbol
        # sequence numbers are given in send order: trades, then book, then bbo and derivatives
        trades = (
            [self.message(session, b) for b in bodies["trades"]]
            if session.subscribed("trades", product)
            else []
        )
        book = [self.message(session, bodies["book"])] if session.subscribed("book", product) else []
        other: list[str] = []
        if session.subscribed("bbo", product):
            other.append(self.message(session, bodies["bbo"]))
        for ours in ("funding", "risk"):
            if bodies[ours] is not None and session.subscribed(ours, product):
                other.append(self.message(session, bodies[ours]))
        return trades, book, other
