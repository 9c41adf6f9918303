"""KuCoin on loopback: bullet-public tokens, the token check, welcome, ping/pong, subscribe/ack, the
level-2 increments, trades and tickers of spot and futures, and their REST snapshots.

Everything is rendered once per market step (shared by every client); sequences follow KuCoin's rules
(see :mod:`collectors.venues.kucoin.client`): spot increments cover ``first..last`` update ids with one
sequence per change (a step without a change sends KuCoin's price-0, sequence-only change); futures
send one message per change with a per-symbol counter.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar

import orjson
from aiohttp import web

from ...base import ExchangeDialect
from ...simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimulatorConfig
from .. import spot_instruments
from .client import OK_CODE, TOKEN_PATH, split_topic_symbols

Frames = tuple[list[str], list[str], list[str]]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


class KucoinSimulator(ExchangeSimulator):
    """The protocol both KuCoin markets share. Subclasses render their market's payloads."""

    ws_paths = ("/",)
    #: topic prefix -> our channel
    topic_channels: ClassVar[dict[str, str]]
    snapshot_path: ClassVar[str]
    ping_interval_ms: ClassVar[int] = 18_000
    ping_timeout_ms: ClassVar[int] = 10_000

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.tokens: set[str] = set()
        self.bullets = 0
        self.pings = 0
        self.rejected_tokens = 0
        self._rendered: tuple[MarketStep, Frames] | None = None

    # -- rendering -------------------------------------------------------------------------------
    def step_frames(self, step: MarketStep) -> Frames:
        """The frames of one step for a fully subscribed client (rendered once per step)."""
        if self._rendered is None or self._rendered[0] is not step:
            self._rendered = (step, self.render_step(step))
        return self._rendered[1]

    def render_step(self, step: MarketStep) -> Frames:
        """``(trade_frames, book_frames, bbo_frames)`` of a step (market-specific)."""
        raise NotImplementedError

    def publish_step(self, step: MarketStep) -> None:
        self.step_frames(step)  # sequences advance even while nobody listens
        super().publish_step(step)

    def render(self, session: ClientSession, step: MarketStep) -> Frames:
        trades, book, bbo = self.step_frames(step)
        sym = step.symbol
        extra = self.extra_frames(step) if session.subscribed("instrument", sym) else []
        return (
            trades if session.subscribed("trades", sym) else [],
            book if session.subscribed("book", sym) else [],
            (bbo if session.subscribed("bbo", sym) else []) + extra,
        )

    def extra_frames(self, step: MarketStep) -> list[str]:
        """Frames of the market's other topics (futures: ``/contract/instrument``), sent after the bbo."""
        return []

    @staticmethod
    def message(topic: str, subject: str, data: dict[str, Any], sn: int | None = None) -> str:
        """A KuCoin ``message`` frame."""
        msg: dict[str, Any] = {"topic": topic, "type": "message", "subject": subject}
        if sn is not None:
            msg["sn"] = sn
        msg["data"] = data
        return _dumps(msg)

    # -- protocol --------------------------------------------------------------------------------
    async def bullet(self, request: web.Request) -> web.Response:
        """``POST /api/v1/bullet-public``: a fresh token and this server as the instance server."""
        self.rest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        self.bullets += 1
        token = secrets.token_urlsafe(32)
        self.tokens.add(token)
        server = {
            "endpoint": f"{self.ws_url}/",
            "encrypt": False,
            "protocol": "websocket",
            "pingInterval": self.ping_interval_ms,
            "pingTimeout": self.ping_timeout_ms,
        }
        return web.json_response({"code": OK_CODE, "data": {"token": token, "instanceServers": [server]}})

    async def on_open(self, session: ClientSession) -> None:
        query = session.request.query
        connect_id = query.get("connectId") or secrets.token_hex(8)
        session.state["connect_id"] = connect_id
        session.state["last_rx"] = time.monotonic()
        if query.get("token") not in self.tokens:
            self.rejected_tokens += 1
            self.send(
                session, _dumps({"id": connect_id, "type": "error", "code": 401, "data": "token is invalid"})
            )
            session.queue.put_nowait(None)  # the writer sends the error, then closes
            return
        self.send(session, _dumps({"id": connect_id, "type": "welcome"}))

    async def on_message(self, session: ClientSession, text: str) -> None:
        session.state["last_rx"] = time.monotonic()
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            self.send(session, _dumps({"type": "error", "code": 400, "data": "invalid message"}))
            return
        kind, msg_id = msg.get("type"), msg.get("id")
        if kind == "ping":
            self.pings += 1
            self.send(session, _dumps({"id": msg_id, "type": "pong", "timestamp": time.time_ns() // 1000}))
        elif kind in ("subscribe", "unsubscribe") and isinstance(msg.get("topic"), str):
            prefix, symbols = split_topic_symbols(msg["topic"])
            channel = self.topic_channels.get(prefix)
            unknown = [s for s in symbols if s not in self.markets]
            if channel is None or not symbols or unknown:
                self.send(
                    session,
                    _dumps(
                        {
                            "id": msg_id,
                            "type": "error",
                            "code": 404,
                            "data": f"topic {msg['topic']} is not found",
                        }
                    ),
                )
                return
            for symbol in symbols:
                if kind == "subscribe":
                    session.subscriptions.add((channel, symbol))
                else:
                    session.subscriptions.discard((channel, symbol))
            if msg.get("response") is True:
                self.send(session, _dumps({"id": msg_id, "type": "ack"}))
        else:
            self.send(session, _dumps({"id": msg_id, "type": "error", "code": 400, "data": "unknown type"}))

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        # KuCoin drops a client that sent nothing for pingInterval + pingTimeout.
        silent_s = time.monotonic() - session.state.get("last_rx", time.monotonic())
        if silent_s * 1000 > self.ping_interval_ms + self.ping_timeout_ms:
            self._drop(session)
        return []

    async def snapshot(self, request: web.Request) -> web.Response:
        """The REST snapshot route of the market."""
        self.rest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        symbol = request.query.get("symbol", "")
        if symbol not in self.markets:
            return web.json_response({"code": "400100", "msg": "symbol not exists"}, status=400)
        return web.json_response({"code": OK_CODE, "data": self.snapshot_data(symbol)}, dumps=_dumps)

    def snapshot_data(self, symbol: str) -> dict[str, Any]:
        """The snapshot body's ``data`` (market-specific)."""
        raise NotImplementedError

    def rest_routes(self) -> list[web.RouteDef]:
        return [web.post(TOKEN_PATH, self.bullet), web.get(self.snapshot_path, self.snapshot)]


class KucoinSpotSimulator(KucoinSimulator):
    """KuCoin spot: ``/market/match``, ``/market/level2``, ``/market/ticker``, ``level2_100``."""

    topic_channels: ClassVar[dict[str, str]] = {
        "/market/match": "trades",
        "/market/level2": "book",
        "/market/ticker": "bbo",
    }
    snapshot_path: ClassVar[str] = "/api/v1/market/orderbook/level2_100"

    def instrument_routes(self) -> list[web.RouteDef]:
        """The venue's instrument list: this simulator's markets."""
        return self.instruments_routes_of(
            [spot_instruments.KUCOIN_PATH], lambda: spot_instruments.kucoin_body(self.markets)
        )

    def render_step(self, step: MarketStep) -> Frames:
        sym, ms = step.symbol, step.ts_ns // 1_000_000
        trades = [
            self.message(
                f"/market/match:{sym}",
                "trade.l3match",
                {
                    "makerOrderId": f"m{t.trade_id}",
                    "price": t.price,
                    "sequence": str(step.update_id),
                    "side": t.side,
                    "size": t.size,
                    "symbol": sym,
                    "takerOrderId": f"t{t.trade_id}",
                    "time": str(step.ts_ns),
                    "tradeId": str(t.trade_id),
                    "type": "match",
                },
            )
            for t in step.trades
        ]
        seq = step.first_update_id
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        for levels, target in ((step.bids, bids), (step.asks, asks)):
            for price, size in levels:
                target.append([price, size, str(seq)])
                seq += 1
        if not bids and not asks:
            asks.append(["0", "0", str(step.first_update_id)])  # KuCoin's sequence-only change
        book = [
            self.message(
                f"/market/level2:{sym}",
                "trade.l2update",
                {
                    "changes": {"asks": asks, "bids": bids},
                    "sequenceEnd": step.update_id,
                    "sequenceStart": step.first_update_id,
                    "symbol": sym,
                    "time": ms,
                },
            )
        ]
        (bp, bq), (ap, aq) = step.model.best()
        last = step.trades[-1] if step.trades else None
        ticker = {
            "sequence": str(step.update_id),
            "price": last.price if last else bp,
            "size": last.size if last else "0",
            "bestAsk": ap,
            "bestAskSize": aq,
            "bestBid": bp,
            "bestBidSize": bq,
            "time": ms,
        }
        return trades, book, [self.message(f"/market/ticker:{sym}", "trade.ticker", ticker)]

    def snapshot_data(self, symbol: str) -> dict[str, Any]:
        model = self.markets[symbol]
        bids, asks = model.top(100)
        return {
            "time": self.now_exchange_ns() // 1_000_000,
            "sequence": str(model.update_id),
            "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks],
        }


def _lots(model: MarketModel, size: str) -> int:
    """A model size string as an integer number of contracts."""
    return round(float(size) * 10**model.size_decimals)


class KucoinFuturesSimulator(KucoinSimulator):
    """KuCoin futures: ``/contractMarket/execution``, ``/level2``, ``/tickerV2``, ``level2/snapshot``."""

    topic_channels: ClassVar[dict[str, str]] = {
        "/contractMarket/execution": "trades",
        "/contractMarket/level2": "book",
        "/contractMarket/tickerV2": "bbo",
        "/contract/instrument": "instrument",  # funding and mark share it
    }
    snapshot_path: ClassVar[str] = "/api/v1/level2/snapshot"
    sizes_in_lots = True

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        #: per-symbol level-2 sequence: one per change
        self.sequence = {s: m.update_id for s, m in self.markets.items()}
        #: of :attr:`rest_requests`: the open interest polls (``GET /api/v1/contracts/{symbol}``)
        self.open_interest_requests = 0

    def instrument_routes(self) -> list[web.RouteDef]:
        from .futures import CONTRACTS_PATH

        return [web.get(CONTRACTS_PATH, self.contracts_handler)]

    async def contracts_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v1/contracts/active``: this simulator's markets as linear USDT perpetuals whose
        contract is one model lot (the streams count sizes in lots)."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        data = [self.contract_item(sym, m) for sym, m in self.markets.items()]
        return web.json_response({"code": OK_CODE, "data": data}, dumps=_dumps)

    async def contract_handler(self, request: web.Request) -> web.Response:
        """``GET /api/v1/contracts/{symbol}``: one contract with its current ``openInterest`` (a
        decimal string of contracts, deterministic per update id), as the open interest poll reads it."""
        symbol = request.match_info["symbol"]
        if symbol == "active":  # the instruments list shares the path prefix
            return await self.contracts_handler(request)
        self.rest_requests += 1
        self.open_interest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        model = self.markets.get(symbol)
        if model is None:
            return web.json_response({"code": "400100", "msg": "symbol not exists"}, status=400)
        item = self.contract_item(symbol, model)
        (bp, _), (ap, _) = model.best()
        mark = round((float(bp) + float(ap)) / 2, 2)
        item.update(
            {
                "fundingFeeRate": 0.0001,
                "predictedFundingFeeRate": 0.0001,
                "openInterest": str(1_000_000 + model.update_id % 99_991),
                "markPrice": mark,
                "indexPrice": round(mark * 0.9999, 2),
            }
        )
        return web.json_response({"code": OK_CODE, "data": item}, dumps=_dumps)

    def rest_routes(self) -> list[web.RouteDef]:
        from .futures import CONTRACT_PATH

        return [*super().rest_routes(), web.get(CONTRACT_PATH + "/{symbol}", self.contract_handler)]

    def contract_item(self, sym: str, m: MarketModel) -> dict[str, Any]:
        """One contract of ``contracts/active`` (and of ``contracts/{symbol}``, which adds market data)."""
        root = sym[: -len("USDTM")] if sym.endswith("USDTM") else sym
        return {
            "symbol": sym,
            "rootSymbol": "USDT",
            "type": "FFWCSX",
            "firstOpenDate": 1585555200000,
            "expireDate": None,
            "settleDate": None,
            "baseCurrency": root,
            "quoteCurrency": "USDT",
            "settleCurrency": "USDT",
            "maxOrderQty": 1000000,
            "maxPrice": 1000000.0,
            "lotSize": 1,
            "tickSize": m.tick,
            "indexPriceTickSize": m.tick,
            "multiplier": 10**-m.size_decimals,
            "isDeleverage": True,
            "isQuanto": False,
            "isInverse": False,
            "markMethod": "FairPrice",
            "status": "Open",
        }

    def render_step(self, step: MarketStep) -> Frames:
        sym, model, ns = step.symbol, step.model, step.ts_ns
        trades = [
            self.message(
                f"/contractMarket/execution:{sym}",
                "match",
                {
                    "symbol": sym,
                    "sequence": t.trade_id,
                    "side": t.side,
                    "size": _lots(model, t.size),
                    "price": t.price,
                    "takerOrderId": f"t{t.trade_id}",
                    "makerOrderId": f"m{t.trade_id}",
                    "tradeId": str(t.trade_id),
                    "ts": ns,
                },
                sn=t.trade_id,
            )
            for t in step.trades
        ]
        book = []
        seq = self.sequence[sym]
        for side, levels in (("buy", step.bids), ("sell", step.asks)):
            for price, size in levels:
                seq += 1
                book.append(
                    self.message(
                        f"/contractMarket/level2:{sym}",
                        "level2",
                        {
                            "sequence": seq,
                            "change": f"{price},{side},{_lots(model, size)}",
                            "timestamp": ns // 1_000_000,
                        },
                        sn=seq,
                    )
                )
        self.sequence[sym] = seq
        (bp, bq), (ap, aq) = model.best()
        ticker = {
            "symbol": sym,
            "sequence": seq,
            "bestBidSize": _lots(model, bq),
            "bestBidPrice": bp,
            "bestAskPrice": ap,
            "bestAskSize": _lots(model, aq),
            "ts": ns,
        }
        return trades, book, [self.message(f"/contractMarket/tickerV2:{sym}", "tickerV2", ticker, sn=seq)]

    def extra_frames(self, step: MarketStep) -> list[str]:
        """``/contract/instrument``: one ``mark.index.price`` and one ``funding.rate`` per step (KuCoin
        pushes them every second and every minute; the loopback is faster so a short test sees both)."""
        sym, model = step.symbol, step.model
        ms = step.ts_ns // 1_000_000
        (bp, _), (ap, _) = model.best()
        mid = (float(bp) + float(ap)) / 2
        topic = f"/contract/instrument:{sym}"
        mark = {"markPrice": round(mid, 2), "indexPrice": round(mid * 0.9999, 2), "granularity": 1000}
        funding = {"granularity": 60000, "fundingRate": 0.0001 if model.update_id % 2 else -0.00005}
        return [
            self.message(topic, "mark.index.price", {**mark, "timestamp": ms}),
            self.message(topic, "funding.rate", {**funding, "timestamp": ms}),
        ]

    def snapshot_data(self, symbol: str) -> dict[str, Any]:
        model = self.markets[symbol]
        bids, asks = model.top()
        return {
            "sequence": self.sequence[symbol],
            "symbol": symbol,
            "bids": [[float(p), _lots(model, s)] for p, s in bids],
            "asks": [[float(p), _lots(model, s)] for p, s in asks],
            "ts": self.now_exchange_ns(),
        }
