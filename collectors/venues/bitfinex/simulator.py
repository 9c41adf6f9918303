"""Bitfinex v2 on loopback: ``/ws/2``, ``conf`` flags (``SEQ_ALL`` sequence numbers and ``OB_CHECKSUM``
checksums per connection), channel ids, ``hb`` heartbeats, book/trades/ticker/status channels, ``te`` then
``tu`` per trade, recent trades replayed on subscribe, liquidations on ``liq:global``.

The book channel serves the model's whole book (the client keeps what it is sent; the checksum covers
the best 25 levels of each side either way).
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from ...book import ASK, BID
from ...checksum import to_signed32
from ...simulator import ClientSession, ExchangeSimulator, MarketStep, SimTrade
from . import instruments as bitfinex_instruments
from .client import CHECKSUM_DEPTH, FLAG_OB_CHECKSUM, FLAG_SEQ_ALL, FLAG_TIMESTAMP, is_perpetual, js_number

if TYPE_CHECKING:
    from aiohttp import web

#: recent trades a trades subscription replays
TRADE_SNAPSHOT = 30
#: market steps between two derivatives status messages of a symbol
STATUS_EVERY = 4
#: market steps between two liquidations of a symbol
LIQ_EVERY = 15


def _n(text: str) -> float:
    return float(text)


def model_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """The checksum of the model's book, printed as the client prints what it receives."""
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts.append(f"{js_number(_n(bids[i][0]))}:{js_number(_n(bids[i][1]))}")
        if i < len(asks):
            parts.append(f"{js_number(_n(asks[i][0]))}:{js_number(-_n(asks[i][1]))}")
    return to_signed32(zlib.crc32(":".join(parts).encode()))


class BitfinexSimulator(ExchangeSimulator):
    """The Bitfinex dialect's server side."""

    ws_paths = ("/ws/2",)

    def __init__(self, dialect: Any, config: Any) -> None:
        super().__init__(dialect, config)
        self.next_chan = 1000
        self.recent: dict[str, deque[SimTrade]] = {s: deque(maxlen=TRADE_SNAPSHOT) for s in self.markets}
        self.steps: dict[str, int] = dict.fromkeys(self.markets, 0)
        self.next_pos = 100_000
        self.liquidation: list[Any] | None = None

    # -- framing ---------------------------------------------------------------------------------
    def frame(self, session: ClientSession, chan_id: int, *body: Any) -> str:
        """``[chanId, *body]``, then the connection's next sequence number (``SEQ_ALL``) and the time in ms
        (``TIMESTAMP``)."""
        msg: list[Any] = [chan_id, *body]
        flags = session.state.get("flags", 0)
        if flags & FLAG_SEQ_ALL:
            session.state["seq"] = session.state.get("seq", 0) + 1
            msg.append(session.state["seq"])
        if flags & FLAG_TIMESTAMP:
            msg.append(self.now_exchange_ns() // 1_000_000)
        return orjson.dumps(msg).decode()

    def chans(self, session: ClientSession) -> dict[int, tuple[str, str]]:
        chans: dict[int, tuple[str, str]] = session.state.setdefault("chans", {})
        return chans

    def chan_of(self, session: ClientSession, channel: str, key: str) -> int | None:
        for chan_id, sub in self.chans(session).items():
            if sub == (channel, key):
                return chan_id
        return None

    async def on_open(self, session: ClientSession) -> None:
        self.send(session, '{"event":"info","version":2,"serverId":"simulator","platform":{"status":1}}')

    async def on_message(self, session: ClientSession, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.send(session, '{"event":"error","msg":"invalid JSON","code":10000}')
            return
        if not isinstance(msg, dict):
            self.send(session, '{"event":"error","msg":"unknown event","code":10000}')
            return
        event = msg.get("event")
        if event == "conf":
            flags = msg.get("flags")
            if not isinstance(flags, int):
                self.send(session, '{"event":"conf","status":"FAILED","flags":0}')
                return
            session.state["flags"] = flags
            self.send(session, orjson.dumps({"event": "conf", "status": "OK", "flags": flags}).decode())
        elif event == "ping":
            self.send(session, orjson.dumps({"event": "pong", "cid": msg.get("cid")}).decode())
        elif event == "subscribe":
            self.subscribe(session, msg)
        elif event == "unsubscribe":
            chan_id = msg.get("chanId")
            sub = self.chans(session).pop(chan_id, None) if isinstance(chan_id, int) else None
            if sub is None:
                self.send(session, '{"event":"error","msg":"unsubscribe: invalid","code":10400}')
                return
            session.subscriptions.discard(sub)
            self.send(
                session, orjson.dumps({"event": "unsubscribed", "status": "OK", "chanId": chan_id}).decode()
            )
        else:
            self.send(session, '{"event":"error","msg":"unknown event","code":10000}')

    def subscribe(self, session: ClientSession, msg: dict[str, Any]) -> None:
        channel = msg.get("channel")
        if channel == "status":
            key = msg.get("key")
            if key == "liq:global":
                sub = ("liq", "liq:global")
            elif isinstance(key, str) and key.startswith("deriv:") and key[6:] in self.markets:
                sub = ("deriv", key[6:])
            else:
                self.send(session, '{"event":"error","msg":"subscribe: invalid key","code":10300}')
                return
        elif channel in ("book", "trades", "ticker") and msg.get("symbol") in self.markets:
            sub = (str(channel), str(msg["symbol"]))
        else:
            self.send(session, '{"event":"error","msg":"subscribe: invalid","code":10300}')
            return
        if self.chan_of(session, *sub) is not None:
            self.send(session, '{"event":"error","msg":"subscribe: dup","code":10301}')
            return
        self.next_chan += 1
        chan_id = self.next_chan
        self.chans(session)[chan_id] = sub
        session.subscriptions.add(sub)
        answer: dict[str, Any] = {"event": "subscribed", "channel": channel, "chanId": chan_id}
        if channel == "status":
            answer["key"] = msg["key"]
        else:
            answer.update(symbol=sub[1], pair=sub[1][1:])
            if channel == "book":
                answer.update(prec="P0", freq="F0", len=msg.get("len", "25"))
        self.send(session, orjson.dumps(answer).decode())
        native = sub[1]
        if channel == "book":
            bids, asks = self.markets[native].top()
            levels = [[_n(p), 1, _n(s)] for p, s in bids] + [[_n(p), 1, -_n(s)] for p, s in asks]
            self.send(session, self.frame(session, chan_id, levels))
        elif channel == "trades":
            trades = [
                self.trade_entry(t, self.now_exchange_ns() // 1_000_000)
                for t in reversed(self.recent[native])
            ]
            self.send(session, self.frame(session, chan_id, trades))

    @staticmethod
    def trade_entry(t: SimTrade, ms: int) -> list[Any]:
        size = _n(t.size)
        return [t.trade_id, ms, size if t.side == "buy" else -size, _n(t.price)]

    # -- market ------------------------------------------------------------------------------------
    def publish_step(self, step: MarketStep) -> None:
        self.recent[step.symbol].extend(step.trades)
        self.steps[step.symbol] += 1
        self.liquidation = None
        if is_perpetual(step.symbol) and self.steps[step.symbol] % LIQ_EVERY == 0:
            self.next_pos += 1
            (bp, _), _ = step.model.best()
            amount = 0.25 if self.next_pos % 2 else -0.25
            ms = step.ts_ns // 1_000_000
            self.liquidation = [
                "pos",
                self.next_pos,
                ms,
                None,
                step.symbol,
                amount,
                _n(bp),
                None,
                0,
                1,
                None,
                _n(bp),
            ]
        super().publish_step(step)

    def render(self, session: ClientSession, step: MarketStep) -> tuple[list[str], list[str], list[str]]:
        native, ms = step.symbol, step.ts_ns // 1_000_000
        trades: list[str] = []
        chan = self.chan_of(session, "trades", native)
        if chan is not None:
            for t in step.trades:
                entry = self.trade_entry(t, ms)
                trades.append(self.frame(session, chan, "te", entry))
                trades.append(self.frame(session, chan, "tu", entry))
        book: list[str] = []
        chan = self.chan_of(session, "book", native)
        if chan is not None:
            for side, levels in ((BID, step.bids), (ASK, step.asks)):
                sign = 1.0 if side == BID else -1.0
                for p, s in levels:
                    size = _n(s)
                    entry = [_n(p), 1, sign * size] if size > 0 else [_n(p), 0, sign]
                    book.append(self.frame(session, chan, entry))
            if book and session.state.get("flags", 0) & FLAG_OB_CHECKSUM:
                bids, asks = step.model.top(CHECKSUM_DEPTH)
                cs = model_checksum(bids, asks)
                if step.corrupt_checksum:
                    cs = to_signed32(cs + 1)
                book.append(self.frame(session, chan, "cs", cs))
        other: list[str] = []
        chan = self.chan_of(session, "ticker", native)
        if chan is not None:
            (bp, bq), (ap, aq) = step.model.best()
            ticker = [
                _n(bp),
                _n(bq) * 7,
                _n(ap),
                _n(aq) * 7,
                1.5,
                0.0001,
                _n(bp),
                1234.5,
                _n(ap) + 10,
                _n(bp) - 10,
            ]
            other.append(self.frame(session, chan, ticker))
        count = self.steps[native]
        chan = self.chan_of(session, "deriv", native)
        if chan is not None and count % STATUS_EVERY == 0:
            (bp, _), (ap, _) = step.model.best()
            mid = (_n(bp) + _n(ap)) / 2
            status: list[Any] = [None] * 23
            status[0] = ms
            status[2] = round(mid, 2)
            status[3] = round(mid * 0.9999, 2)
            status[5] = 1_396_531.67
            status[7] = (ms // 28_800_000 + 1) * 28_800_000
            status[8] = 0.0001056
            status[9] = 6
            status[11] = -0.0000138
            status[14] = round(mid * 1.0001, 2)
            status[17] = 1000 + step.update_id % 997
            status[21], status[22] = 0, 0.0075
            other.append(self.frame(session, chan, status))
        chan = self.chan_of(session, "liq", "liq:global")
        if chan is not None and self.liquidation is not None:
            other.append(self.frame(session, chan, [self.liquidation]))
        return trades, book, other

    def instrument_routes(self) -> list[web.RouteDef]:
        """Tickers and the two pair info configurations, for the simulator's markets."""
        routes = self.instruments_routes_of(
            [bitfinex_instruments.TICKERS_PATH.partition("?")[0]],
            lambda: bitfinex_instruments.tickers_body(self.markets),
        )
        routes += self.instruments_routes_of(
            [bitfinex_instruments.PAIRS_PATH], lambda: bitfinex_instruments.pairs_body(self.markets, False)
        )
        routes += self.instruments_routes_of(
            [bitfinex_instruments.FUTURES_PATH], lambda: bitfinex_instruments.pairs_body(self.markets, True)
        )
        return routes

    def heartbeat_frames(self, session: ClientSession, now_ns: int) -> list[str]:
        return [self.frame(session, chan_id, "hb") for chan_id in list(self.chans(session))]
