"""The simulator side of both HTX dialects: gzip frames, ping/pong enforcement, sub/unsub/req.

Shared behaviour (:class:`HtxSimulator`), as the venue documents it:
- every frame sent is gzip-compressed JSON in a binary websocket frame (bytes frames injected as
  faults are sent as they are);
- ``{"ping": <ms>}`` every ``heartbeat_interval_s``; a client that leaves two pings in a row without a
  ``{"pong": ...}`` is disconnected right before the next ping (:attr:`heartbeat_drops` counts them);
- ``{"sub"|"unsub": topic, "id"}`` answered with ``subbed``/``unsubbed``; unknown topics with
  ``{"status": "error", "err-code": "bad-request", "err-msg": "invalid topic ..."}``;
- ``trade.detail`` re-sends the latest trade of the symbol on every subscribe (as HTX does);
- books are windows of the market's best levels, advanced every step whether or not anybody listens.
Spot (:class:`HtxSpotSimulator`): ``trade.detail``/``bbo`` only on ``/ws``, ``mbp.<n>`` and its
``req`` only on ``/feed``; ``seqNum`` is the market's update id, ``prevSeqNum`` the previous message's;
one ``req`` per 100 ms per connection, faster ones get ``429 too many request``; ``bbo.seqId`` is the
update id too. Swaps (:class:`HtxSwapSimulator`): ``depth.size_<n>.high_freq`` with
``data_type=incremental`` (a ``snapshot`` on subscribe, then ``update`` with ``version + 1``), sizes in
whole contracts.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import orjson
from aiohttp import web

from ...base import ExchangeDialect
from ...simulator import ClientSession, ExchangeSimulator, MarketModel, MarketStep, SimulatorConfig
from .. import htx_gate_instruments

#: Unanswered pings after which the server disconnects (documented: two in a row).
MAX_UNANSWERED_PINGS = 2
#: Least seconds between two ``req`` of one spot connection (documented: 100 ms).
REQ_INTERVAL_S = 0.1
#: Contract size of every simulated swap (coins per contract), for ``quantity``/``trade_turnover``.
SIM_CONTRACT_SIZE = 0.001
#: notification topics served on ``/linear-swap-notification`` (after ``public.$contract_code``)
NOTIFICATION_SUFFIXES = (".funding_rate", ".liquidation_orders")
#: swaps: one trade in this many (by id) comes with a liquidation order
LIQUIDATION_EVERY = 4


def gzip_text(text: str) -> bytes:
    """One gzip member holding ``text`` (as HTX sends every frame)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return packer.compress(text.encode()) + packer.flush()


class Window:
    """The levels of one book topic as last pushed (ticks -> lots) and its sequence."""

    __slots__ = ("asks", "bids", "seq")

    def __init__(self, model: MarketModel, depth: int, seq: int) -> None:
        self.bids, self.asks = window_levels(model, depth)
        self.seq = seq


def window_levels(model: MarketModel, depth: int) -> tuple[dict[int, int], dict[int, int]]:
    """The best ``depth`` levels per side (bids ascend in the model: the best are last)."""
    return (
        {t: model.bids[t] for t in model.bids.keys()[-depth:]},
        {t: model.asks[t] for t in model.asks.keys()[:depth]},
    )


def changes(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    """Levels that differ between two windows; levels that left get 0."""
    out = {t: v for t, v in new.items() if old.get(t) != v}
    out.update({t: 0 for t in old if t not in new})
    return out


class HtxSimulator(ExchangeSimulator):
    """What both HTX simulators share (see the module docstring)."""

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.windows: dict[tuple[str, int], Window] = {}
        self.last_trade: dict[str, str] = {}
        self.best: dict[str, Any] = {}
        self.heartbeat_drops = 0
        self.pongs = 0
        self._rendered: tuple[MarketStep, dict[str, list[str]]] | None = None

    # -- wire ----------------------------------------------------------------------------------
    def send(self, session: ClientSession, frame: str | bytes) -> None:
        super().send(session, gzip_text(frame) if isinstance(frame, str) else frame)

    def send_json(self, session: ClientSession, msg: dict[str, Any]) -> None:
        """Sends one JSON message (gzip-compressed by :meth:`send`)."""
        self.send(session, orjson.dumps(msg).decode())

    def error(self, session: ClientSession, msg_id: Any, err: str) -> None:
        """An error answer as HTX sends them."""
        self.send_json(
            session,
            {
                "status": "error",
                "ts": self.now_exchange_ns() // 1_000_000,
                "id": msg_id,
                "err-code": "bad-request",
                "err-msg": err,
            },
        )

    async def on_open(self, session: ClientSession) -> None:
        session.state["topics"] = set()
        session.state["unanswered"] = 0
        session.state["last_req"] = 0.0

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        if self.faults.silent:
            return []  # nothing is delivered, so nothing can be left unanswered
        if session.state.get("unanswered", 0) >= MAX_UNANSWERED_PINGS:
            self.heartbeat_drops += 1
            self._drop(session)
            return []
        session.state["unanswered"] = session.state.get("unanswered", 0) + 1
        return [f'{{"ping":{now_ns // 1_000_000}}}']

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.error(session, None, "not json string")
            return
        if not isinstance(msg, dict):
            self.error(session, None, "not json string")
            return
        if "pong" in msg:
            self.pongs += 1
            session.state["unanswered"] = 0
            return
        msg_id = msg.get("id")
        for op in ("sub", "unsub", "req"):
            topic = msg.get(op)
            if topic is None:
                continue
            parsed = self.parse_topic(session, str(topic), msg)
            if parsed is None:
                self.error(session, msg_id, f"invalid topic {str(topic)[:80]}")
                return
            channel, symbol, depth = parsed
            ms = self.now_exchange_ns() // 1_000_000
            topics: set[str] = session.state["topics"]
            if op == "sub":
                topics.add(topic)
                session.subscriptions.add((channel, symbol))
                self.send_json(session, {"id": msg_id, "status": "ok", "subbed": topic, "ts": ms})
                self.on_subscribed(session, topic, channel, symbol, depth)
            elif op == "unsub":
                if topic not in topics:
                    self.error(session, msg_id, "unsub with not subbed topic")
                    return
                topics.discard(topic)
                session.subscriptions.discard((channel, symbol))
                self.send_json(session, {"id": msg_id, "status": "ok", "unsubbed": topic, "ts": ms})
            else:
                self.on_req(session, msg_id, topic, channel, symbol, depth)
            return
        self.error(session, msg_id, "invalid request")

    # -- dialect parts ---------------------------------------------------------------------------
    def parse_topic(
        self, session: ClientSession, topic: str, msg: dict[str, Any]
    ) -> tuple[str, str, int] | None:
        """``(channel, symbol, depth)`` of a topic this endpoint serves, or None."""
        raise NotImplementedError

    def on_subscribed(
        self, session: ClientSession, topic: str, channel: str, symbol: str, depth: int
    ) -> None:
        """What follows a successful ``sub`` (the latest trade again; a book snapshot on swaps)."""
        if channel == "trades" and symbol in self.last_trade:
            self.send(session, self.last_trade[symbol])

    def on_req(
        self, session: ClientSession, msg_id: Any, topic: str, channel: str, symbol: str, depth: int
    ) -> None:
        self.error(session, msg_id, f"invalid topic {topic[:80]}")

    def window(self, symbol: str, depth: int) -> Window:
        """The window of a book topic (created from the current market)."""
        w = self.windows.get((symbol, depth))
        if w is None:
            w = self.windows[(symbol, depth)] = Window(self.markets[symbol], depth, self.first_seq(symbol))
        return w

    def first_seq(self, symbol: str) -> int:
        return self.markets[symbol].update_id

    def step_frames(self, step: MarketStep) -> dict[str, list[str]]:
        """Every topic's frames for one step (venue-specific), computed once for every session."""
        raise NotImplementedError

    def frames_of(self, step: MarketStep) -> dict[str, list[str]]:
        # keyed by the step object itself: an id() of a freed step can be reused by the next one
        if self._rendered is None or self._rendered[0] is not step:
            self._rendered = (step, self.step_frames(step))
        return self._rendered[1]

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        frames = self.frames_of(step)
        topics: set[str] = session.state.get("topics", set())
        trades: list[str] = []
        book: list[str] = []
        bbo: list[str] = []
        for topic, topic_frames in frames.items():
            if topic not in topics:
                continue
            if topic.endswith(".trade.detail"):
                trades.extend(topic_frames)
            elif topic.endswith(
                (".bbo", ".mark_price.1min", ".funding_rate", ".liquidation_orders")
            ):  # book faults leave them alone
                bbo.extend(topic_frames)
            else:
                book.extend(topic_frames)
        return trades, book, bbo

    def publish_step(self, step: MarketStep) -> None:
        self.frames_of(step)  # windows advance every step, whoever listens
        super().publish_step(step)


def _num(text: str) -> float:
    return float(text)


class HtxSpotSimulator(HtxSimulator):
    """HTX spot on loopback: ``/ws`` (trades, bbo) and ``/feed`` (mbp and its ``req``)."""

    def instrument_routes(self) -> list[web.RouteDef]:
        return [web.get(htx_gate_instruments.HTX_PATH, self.instruments_handler)]

    async def instruments_handler(self, request: web.Request) -> web.Response:
        """``GET /v1/common/symbols``: this simulator's markets."""
        fault = self.instruments_fault_response()
        if fault is not None:
            return fault
        from .spot import QUOTES

        body = htx_gate_instruments.htx_symbols_body(self.markets, QUOTES)
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.ws_paths = (str(getattr(dialect, "ws_path", "/ws")), str(getattr(dialect, "feed_path", "/feed")))
        self.req_rejected = 0

    def parse_topic(
        self, session: ClientSession, topic: str, msg: dict[str, Any]
    ) -> tuple[str, str, int] | None:
        prefix, _, tail = topic.partition(".")
        symbol, _, rest = tail.partition(".")
        if prefix != "market" or symbol not in self.markets:
            return None
        feed = session.request.path == self.ws_paths[1]
        if rest == "trade.detail" and not feed:
            return ("trades", symbol, 0)
        if rest == "bbo" and not feed:
            return ("bbo", symbol, 0)
        if rest.startswith("mbp.") and rest[4:].isdigit() and feed:
            depth = int(rest[4:])
            if depth in getattr(self.dialect, "book_depths", (150,)):
                self.window(symbol, depth)
                return ("book", symbol, depth)
        return None

    def on_req(
        self, session: ClientSession, msg_id: Any, topic: str, channel: str, symbol: str, depth: int
    ) -> None:
        if channel != "book":
            self.error(session, msg_id, f"invalid topic {topic[:80]}")
            return
        now = time.monotonic()
        if now - session.state["last_req"] < REQ_INTERVAL_S:
            self.req_rejected += 1
            self.error(session, msg_id, "429 too many request")
            return
        session.state["last_req"] = now
        model = self.markets[symbol]
        w = self.window(symbol, depth)
        self.send_json(
            session,
            {
                "id": msg_id,
                "rep": topic,
                "status": "ok",
                "ts": self.now_exchange_ns() // 1_000_000,
                "data": {
                    "seqNum": w.seq,
                    "bids": [
                        [_num(model.price_str(t)), _num(model.size_str(w.bids[t]))]
                        for t in sorted(w.bids, reverse=True)
                    ],
                    "asks": [
                        [_num(model.price_str(t)), _num(model.size_str(w.asks[t]))] for t in sorted(w.asks)
                    ],
                },
            },
        )

    def step_frames(self, step: MarketStep) -> dict[str, list[str]]:
        symbol = step.symbol
        model = step.model
        ms = step.ts_ns // 1_000_000
        frames: dict[str, list[str]] = {}
        if step.trades:
            topic = f"market.{symbol}.trade.detail"
            frame = orjson.dumps(
                {
                    "ch": topic,
                    "ts": ms,
                    "tick": {
                        "id": step.update_id,
                        "ts": ms,
                        "data": [
                            {
                                "id": t.trade_id * 1_000_000 + step.update_id % 1_000_000,
                                "ts": ms,
                                "tradeId": t.trade_id,
                                "amount": _num(t.size),
                                "price": _num(t.price),
                                "direction": t.side,
                            }
                            for t in step.trades
                        ],
                    },
                }
            ).decode()
            frames[topic] = [frame]
            self.last_trade[symbol] = frame
        for (sym, depth), w in self.windows.items():
            if sym != symbol:
                continue
            new_b, new_a = window_levels(model, depth)
            db, da = changes(w.bids, new_b), changes(w.asks, new_a)
            w.bids, w.asks = new_b, new_a
            if not (db or da):
                continue
            prev, w.seq = w.seq, step.update_id
            tick: dict[str, Any] = {"seqNum": w.seq, "prevSeqNum": prev}
            if db:
                tick["bids"] = [
                    [_num(model.price_str(t)), _num(model.size_str(db[t]))] for t in sorted(db, reverse=True)
                ]
            if da:
                tick["asks"] = [[_num(model.price_str(t)), _num(model.size_str(da[t]))] for t in sorted(da)]
            topic = f"market.{symbol}.mbp.{depth}"
            frames[topic] = [orjson.dumps({"ch": topic, "ts": ms, "tick": tick}).decode()]
        (bp, bq), (ap, aq) = model.best()
        if self.best.get(symbol) != (bp, bq, ap, aq):
            self.best[symbol] = (bp, bq, ap, aq)
            topic = f"market.{symbol}.bbo"
            tick = {
                "seqId": step.update_id,
                "ask": _num(ap),
                "askSize": _num(aq),
                "bid": _num(bp),
                "bidSize": _num(bq),
                "quoteTime": ms,
                "symbol": symbol,
            }
            frames[topic] = [orjson.dumps({"ch": topic, "ts": ms, "tick": tick}).decode()]
        return frames


class HtxSwapSimulator(HtxSimulator):
    """HTX USDT-margined swaps on loopback: ``/linear-swap-ws`` and, for the mark price, ``/ws_index``."""

    #: books and trades count whole contracts of one model lot (the instruments say so)
    sizes_in_lots = True

    def instrument_routes(self) -> list[web.RouteDef]:
        """``GET /linear-swap-api/v1/swap_contract_info``: this simulator's markets as listed swaps."""
        return self.instruments_routes_of(
            [htx_gate_instruments.HTX_SWAP_PATH],
            lambda: htx_gate_instruments.htx_swap_contracts_body(self.markets),
        )

    def __init__(self, dialect: ExchangeDialect, config: SimulatorConfig) -> None:
        super().__init__(dialect, config)
        self.ws_paths = (
            str(getattr(dialect, "ws_path", "/linear-swap-ws")),
            str(getattr(dialect, "index_path", "/ws_index")),
            str(getattr(dialect, "notification_path", "/linear-swap-notification")),
        )
        #: the running mark-price kline of each contract
        self.mark_kline: dict[str, dict[str, Any]] = {}
        #: of :attr:`rest_requests`: the open interest polls
        self.open_interest_requests = 0

    def first_seq(self, symbol: str) -> int:
        return 1_000_000 + zlib.crc32(symbol.encode()) % 1_000_000

    def parse_topic(
        self, session: ClientSession, topic: str, msg: dict[str, Any]
    ) -> tuple[str, str, int] | None:
        prefix, _, tail = topic.partition(".")
        symbol, _, rest = tail.partition(".")
        if prefix != "market" or symbol not in self.markets:
            return None
        # /ws_index serves the mark-price kline only; /linear-swap-ws everything else
        if (session.request.path == self.ws_paths[1]) != (rest == "mark_price.1min"):
            return None
        if rest == "mark_price.1min":
            return ("mark", symbol, 0)
        if rest == "trade.detail":
            return ("trades", symbol, 0)
        if rest == "bbo":
            return ("bbo", symbol, 0)
        if (
            rest.startswith("depth.size_")
            and rest.endswith(".high_freq")
            and msg.get("data_type") == "incremental"
        ):
            size = rest[11:-10]
            if size.isdigit() and int(size) in getattr(self.dialect, "book_depths", (150,)):
                self.window(symbol, int(size))
                return ("book", symbol, int(size))
        return None

    # -- /linear-swap-notification: the op protocol -------------------------------------------------
    def notification(self, session: ClientSession) -> bool:
        return session.request.path == self.ws_paths[2]

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        frames = super().heartbeat_frames(session, now_ns)
        if self.notification(session):
            return [f'{{"op":"ping","ts":"{now_ns // 1_000_000}"}}' for _ in frames]
        return frames

    async def on_message(self, session: ClientSession, text: str) -> None:
        if not self.notification(session):
            await super().on_message(session, text)
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        op = msg.get("op") if isinstance(msg, dict) else None
        ms = self.now_exchange_ns() // 1_000_000
        if op == "pong":
            self.pongs += 1
            session.state["unanswered"] = 0
            return
        if op not in ("sub", "unsub") or not isinstance(msg, dict):
            self.send_json(session, {"op": "close", "ts": ms, "err-code": 2002, "err-msg": "invalid op"})
            return
        topic, cid = str(msg.get("topic")), msg.get("cid")
        suffix = next((x for x in NOTIFICATION_SUFFIXES if topic.endswith(x)), None)
        contract = topic[len("public.") : -len(suffix)] if suffix else ""
        if not topic.startswith("public.") or suffix is None or contract not in self.markets:
            reply = {
                "op": op,
                "cid": cid,
                "topic": topic,
                "ts": ms,
                "err-code": 2011,
                "err-msg": "invalid topic",
            }
            self.send_json(session, reply)
            return
        topics: set[str] = session.state["topics"]
        (topics.add if op == "sub" else topics.discard)(topic)
        self.send_json(session, {"op": op, "cid": cid, "topic": topic, "ts": ms, "err-code": 0})

    def _funding_frame(self, symbol: str, model: MarketModel, ms: int) -> str:
        """A funding-rate push (settlement every 8 h; the estimated rate is null, as documented)."""
        interval = 8 * 3600 * 1000
        item = {
            "symbol": symbol.split("-")[0],
            "contract_code": symbol,
            "fee_asset": symbol.split("-")[1],
            "funding_time": str(ms // 60_000 * 60_000),
            "funding_rate": "0.000100000000000000" if model.update_id % 2 else "-0.000050000000000000",
            "estimated_rate": "null",
            "settlement_time": str((ms // interval + 1) * interval),
        }
        topic = f"public.{symbol}.funding_rate"
        return orjson.dumps({"op": "notify", "topic": topic, "ts": ms, "data": [item]}).decode()

    def _levels(
        self, model: MarketModel, levels: dict[int, int], descending: bool
    ) -> list[list[float | int]]:
        return [[_num(model.price_str(t)), levels[t]] for t in sorted(levels, reverse=descending)]

    def _book_frame(
        self,
        topic: str,
        event: str,
        model: MarketModel,
        w: Window,
        bids: dict[int, int],
        asks: dict[int, int],
        ms: int,
    ) -> str:
        mrid = model.update_id
        tick = {
            "asks": self._levels(model, asks, False),
            "bids": self._levels(model, bids, True),
            "ch": topic,
            "event": event,
            "id": mrid,
            "mrid": mrid,
            "ts": ms,
            "version": w.seq,
        }
        return orjson.dumps({"ch": topic, "tick": tick, "ts": ms}).decode()

    def on_subscribed(
        self, session: ClientSession, topic: str, channel: str, symbol: str, depth: int
    ) -> None:
        super().on_subscribed(session, topic, channel, symbol, depth)
        if channel == "book":
            w = self.window(symbol, depth)
            ms = self.now_exchange_ns() // 1_000_000
            self.send(
                session, self._book_frame(topic, "snapshot", self.markets[symbol], w, w.bids, w.asks, ms)
            )

    def step_frames(self, step: MarketStep) -> dict[str, list[str]]:
        symbol = step.symbol
        model = step.model
        ms = step.ts_ns // 1_000_000
        frames: dict[str, list[str]] = {}
        scale = 10**model.size_decimals
        if step.trades:
            topic = f"market.{symbol}.trade.detail"
            data = []
            for t in step.trades:
                contracts = round(float(t.size) * scale)
                quantity = contracts * SIM_CONTRACT_SIZE
                data.append(
                    {
                        "amount": contracts,
                        "ts": ms,
                        "id": t.trade_id,
                        "price": _num(t.price),
                        "direction": t.side,
                        "quantity": quantity,
                        "trade_turnover": round(quantity * float(t.price), 8),
                    }
                )
            frame = orjson.dumps(
                {"ch": topic, "ts": ms, "tick": {"id": step.update_id, "ts": ms, "data": data}}
            ).decode()
            frames[topic] = [frame]
            self.last_trade[symbol] = frame
        for (sym, depth), w in self.windows.items():
            if sym != symbol:
                continue
            new_b, new_a = window_levels(model, depth)
            db, da = changes(w.bids, new_b), changes(w.asks, new_a)
            w.bids, w.asks = new_b, new_a
            if not (db or da):
                continue
            w.seq += 1
            topic = f"market.{symbol}.depth.size_{depth}.high_freq"
            frames[topic] = [self._book_frame(topic, "update", model, w, db, da, ms)]
        bt, bv = model.bids.peekitem(-1)
        at, av = model.asks.peekitem(0)
        if self.best.get(symbol) != (bt, bv, at, av):
            self.best[symbol] = (bt, bv, at, av)
            topic = f"market.{symbol}.bbo"
            tick = {
                "ch": topic,
                "mrid": step.update_id,
                "id": ms // 1000,
                "bid": [_num(model.price_str(bt)), bv],
                "ask": [_num(model.price_str(at)), av],
                "ts": ms,
                "version": step.update_id,
            }
            frames[topic] = [orjson.dumps({"ch": topic, "ts": ms, "tick": tick}).decode()]
        frames[f"market.{symbol}.mark_price.1min"] = [self._mark_frame(symbol, model, ms)]
        frames[f"public.{symbol}.funding_rate"] = [self._funding_frame(symbol, model, ms)]
        liquidated = [t for t in step.trades if t.trade_id % LIQUIDATION_EVERY == 0]
        if liquidated:
            frames[f"public.{symbol}.liquidation_orders"] = [
                self._liquidation_frame(symbol, liquidated, scale, ms)
            ]
        return frames

    def _liquidation_frame(self, symbol: str, trades: list[Any], scale: int, ms: int) -> str:
        """A liquidation-orders push: one closing order per liquidated trade (size in contracts)."""
        data = []
        for t in trades:
            contracts = max(1, round(float(t.size) * scale))
            amount = contracts * SIM_CONTRACT_SIZE
            data.append(
                {
                    "symbol": symbol.split("-")[0],
                    "contract_code": symbol,
                    "direction": t.side,
                    "offset": "close",
                    "volume": contracts,
                    "price": _num(t.price),
                    "created_at": ms,
                    "amount": round(amount, 8),
                    "trade_turnover": round(amount * float(t.price), 8),
                    "contract_type": "swap",
                    "pair": symbol,
                    "business_type": "swap",
                }
            )
        topic = f"public.{symbol}.liquidation_orders"
        return orjson.dumps({"op": "notify", "topic": topic, "ts": ms, "data": data}).decode()

    # -- REST: the open interest poll ------------------------------------------------------------
    async def open_interest_handler(self, request: web.Request) -> web.Response:
        """``GET swap_open_interest?contract_code=C``: the contract's open interest now (contracts
        deterministic per update id, value at the mid price); HTX refuses with HTTP 200."""
        self.rest_requests += 1
        self.open_interest_requests += 1
        fault = self.rest_fault_response()
        if fault is not None:
            return fault
        ms = self.now_exchange_ns() // 1_000_000
        code = request.query.get("contract_code", "")
        model = self.markets.get(code)
        if model is None:
            body: dict[str, Any] = {
                "status": "error",
                "err_code": 1014,
                "err_msg": "This contract doesnt exist.",
                "ts": ms,
            }
            return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())
        (bp, _), (ap, _) = model.best()
        volume = 50_000 + model.update_id % 9_973
        amount = round(volume * SIM_CONTRACT_SIZE, 8)
        item = {
            "volume": volume,
            "amount": amount,
            "symbol": code.split("-")[0],
            "value": round(amount * (float(bp) + float(ap)) / 2, 4),
            "contract_code": code,
            "trade_amount": 0,
            "trade_volume": 0,
            "trade_turnover": 0,
            "business_type": "swap",
            "pair": code,
            "contract_type": "swap",
        }
        body = {"status": "ok", "data": [item], "ts": ms}
        return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode())

    def rest_routes(self) -> list[web.RouteDef]:
        path = str(getattr(self.dialect, "open_interest_path", "/linear-swap-api/v1/swap_open_interest"))
        return [*super().rest_routes(), web.get(path, self.open_interest_handler)]

    def _mark_frame(self, symbol: str, model: MarketModel, ms: int) -> str:
        """The mark-price kline of the running minute (mid price as the mark; volumes are 0 as documented)."""
        (bp, _), (ap, _) = model.best()
        mark = f"{(float(bp) + float(ap)) / 2:.2f}"
        kline = self.mark_kline.get(symbol)
        start = ms // 60_000 * 60
        if kline is None or kline["id"] != start:
            kline = self.mark_kline[symbol] = {"id": start, "open": mark, "high": mark, "low": mark}
        kline["high"] = max(kline["high"], mark, key=float)
        kline["low"] = min(kline["low"], mark, key=float)
        topic = f"market.{symbol}.mark_price.1min"
        tick = {"vol": "0", "close": mark, "count": "0", **kline, "trade_turnover": "0", "amount": "0"}
        return orjson.dumps({"ch": topic, "ts": ms, "tick": tick}).decode()
