"""HTX USDT-margined perpetual swaps (exchange id ``htx-swap``): ``wss://api.hbdm.com/linear-swap-ws``.

Documentation followed (checked 2026-12-05): https://huobiapi.github.io/docs/usdt_swap/v1/en/
("[General] Subscribe Incremental Market Depth Data", "[General] Subscribe market BBO data push",
"[General] Subscribe Trade Detail Data", market heartbeat, FAQ "How to maintain local MBP data
subscribing incremental MBP"); what HTX spot and swaps share is in :mod:`.common`.

Book: ``market.$contract_code.depth.size_${size}.high_freq`` (size 20 or 150, default 150) subscribed
with ``"data_type": "incremental"``. The first message after a subscribe (and after a reconnect) has
``tick.event == "snapshot"``; then ``"update"`` messages follow, checked every 30 ms and sent only when
the book changed. ``tick.version`` continues the chain: the FAQ says the version is incremented on a
connection and a topic must be re-subscribed when it is not; recorded streams of one topic step by
exactly one per message, which is the rule here:
- ``snapshot``: the book is reset (a ``resync`` at the next epoch after the first one);
- ``update`` with ``version == previous + 1``: applied; ``version <= previous``: a repeat (``duplicate``
  event, ignored, also when the sequence goes backwards); a larger jump: a ``gap`` of that contract
  only (book cleared), and the topic is re-subscribed (``unsub`` then ``sub``) for a new snapshot;
  updates until it arrives are dropped; the request is repeated every :data:`RESUBSCRIBE_AGAIN_AFTER`
  messages if it does not come;
- size 0 removes a level. Sizes are in contracts (``contract_size`` of the contract converts them),
  as the exchange sends them, in books, trades and bbo alike.
Book rows: ``seq = version``, ``ts_exchange = tick.ts`` (when the book was checked).

bbo: ``market.$contract_code.bbo``: ``tick.bid``/``tick.ask`` as ``[price, size]`` (either may be
missing: an empty side), ``tick.ts`` (ts_exchange), ``tick.version`` (seq: the match id, not comparable
with the book's version). Trades: ``trade.detail`` items' ``id`` (unique per contract), ``amount``
(contracts, the size), ``quantity`` (coins, not stored) and ``trade_turnover``.

Symbols: ``BTC-USDT`` (native) <-> ``BTC-USDT-PERP``; dated futures on the same endpoint
(``BTC-USDT-210625``, ``BTC-USDT-CW``) keep HTX's name.

Derivatives channels (issue 15): ``mark`` on ``/ws_index``, ``funding`` and ``liquidations`` on
``/linear-swap-notification``, each endpoint on its own connections (:meth:`HtxSwapDialect.channel_groups`),
``open_interest`` polled over REST by the market connections; pages checked 2026-12-05 through stored
copies:
- ``mark``: the kline ``market.$contract_code.mark_price.1min`` on ``wss://api.hbdm.com/ws_index`` (same
  gzip/ping/``sub`` protocol; https://www.htx.com/en-us/opend/newApiPages/?id=8cb7d626-77b5-11ed-9966-0242ac110003
  "[General] Subscribe Kline Data of Mark Price"): ``{"ch", "ts" (ms, "time of respond generation"),
  "tick": {"id" (kline start, s), "open", "close", "high", "low", "vol", "amount", "count",
  "trade_turnover"}}``, prices as strings. One ``mark_price`` row per push: ``mark_price = tick.close``
  (the latest mark of the running minute), ``ts_exchange = ts``, ``index_price`` null (the index is
  another kline, ``market.$contract_code.index.$period``, not merged here).
- ``funding``: ``public.$contract_code.funding_rate`` on ``wss://api.hbdm.com/linear-swap-notification``
  ("[General] Subscribe funding rate (no authentication)"), which speaks the ``op`` protocol: the client
  sends ``{"op":"sub","cid","topic"}`` (answered ``{"op":"sub","cid","topic","ts","err-code":0}``), the
  server pings ``{"op":"ping","ts":"<ms>"}`` and expects ``{"op":"pong","ts":<same>}``; pushes are
  ``{"op":"notify","topic","ts","data":[{symbol, contract_code, fee_asset, funding_time, funding_rate,
  estimated_rate, settlement_time}]}`` with numbers as strings. One ``funding`` row per item:
  ``funding_rate`` as sent, ``next_funding_time = settlement_time`` (ms), ``predicted_rate =
  estimated_rate`` unless null (the page marks it deprecated, "default is null", and its example sends the
  string ``"null"``), ``ts_exchange = ts``.
- ``liquidations``: ``public.$contract_code.liquidation_orders`` on the same notification endpoint and
  connection as ``funding`` ("[General] Subscribe Liquidation Orders (no authentication) (sub)",
  https://www.htx.com/en-us/opend/newApiPages/?id=8cb7e25d-77b5-11ed-9966-0242ac110003, checked
  2026-12-05 through a stored copy; it is listed and documented there, so the report of a third-party
  client that it was withdrawn is not followed). Subscribed per contract, as ``funding`` is, with
  ``{"op":"sub","cid","topic"}`` and no ``business_type`` (the page: with ``business_type`` ``swap``
  only ``*`` is accepted, a contract code gets error 2011). Pushes are
  ``{"op":"notify","topic","ts","data":[{symbol, contract_code, direction, offset, volume, amount, trade_turnover, price, created_at, contract_type,
  pair, business_type}]}`` with numbers as JSON numbers. One ``liquidations`` row per item: ``side =
  direction`` (``buy``/``sell``: the direction of the liquidation order, which takes liquidity; with
  ``offset`` ``close`` a ``sell`` closes a long), ``price`` the bankruptcy price, ``size = volume``
  (contracts, as every size here; ``amount`` in coins and ``trade_turnover`` in USDT are not stored),
  ``ts_exchange = created_at`` (ms, the order's creation time); HTX gives no id (null). Every item is
  parsed before any row is added, and an item of another contract is a parse error.
- ``open_interest``: REST only. No websocket topic carries it (the market topics of
  ``/linear-swap-ws`` and ``/ws_index`` and the ``public.*`` notification topics in the stored pages
  of https://www.htx.com/en-us/opend/newApiPages/ and https://huobiapi.github.io/docs/usdt_swap/v1/en/;
  checked 2026-12-05). It is polled: ``GET /linear-swap-api/v1/swap_open_interest?contract_code=``
  ("[General] Get Swap Open Interest Information",
  https://www.htx.com/en-us/opend/newApiPages/?id=8cb80166-77b5-11ed-9966-0242ac110003, checked
  2026-12-05; public, 240 requests per 3 s per IP shared by the non-market public interfaces) answers
  ``{"status":"ok","data":[{volume (contracts), amount (coins), symbol, value (USDT), contract_code,
  trade_amount, trade_volume, trade_turnover, contract_type, pair, business_type}],"ts"}``. The market
  connection (``/linear-swap-ws``) polls each of its contracts every
  :attr:`ExchangeDialect.poll_interval_s` (10 s; slower when a round would spend more than a quarter of
  the REST budget, ``collectors.connection.POLL_BUDGET_SHARE``) and injects each answer as a generated
  frame ``{"op":"poll","generated":true,"path":"/linear-swap-api/v1/swap_open_interest",
  "contract_code":"<code>","data":<body>}`` (:func:`open_interest_frame`): the capture holds it, so a
  replay gives the live rows. One ``open_interest`` row per item of the contract: ``open_interest =
  volume`` (contracts), ``open_interest_value = value`` (USDT), ``ts_exchange = ts`` of the answer
  ("time of respond generation", ms). An answer whose ``status`` is not ``ok`` (HTX refuses with HTTP
  200) is a ``rest_error`` event, not a frame.
Push cadence of ``mark_price.1min`` and ``funding_rate``: the pages state none, and no live capture is
shared here, so it is not stated (the rows are per push, whatever the cadence).

The shared recordings (2022, cryptofeed) use ``market.$contract_code.depth.step0`` (a full book per
message, read as described in :mod:`.common`; its ``version`` is a second count, not a sequence) on
``linear-swap-ws`` and, in the other file, on the coin-margined ``swap-ws`` (``BTC-USD``, read the same
way); they have no ``bbo`` and no ``high_freq`` book.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from schemas import RecordBuffer

from ...base import CHANNELS, Subscription
from ...book import parse_levels
from ...events import (
    ParseError,
    emit_event,
    frame_text_for_event,
    funding_rate,
    ms_to_ns,
    non_negative_size,
    positive_price,
)
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from .. import htx_gate_instruments
from .common import HtxDialect, HtxNormaliser, bbo_level, int_field

if TYPE_CHECKING:
    import aiohttp

EXCHANGE = "htx-swap"
#: the mark-price kline channel (after the contract code) and the endpoint serving it
MARK_CHANNEL = "mark_price.1min"
INDEX_PATH = "/ws_index"
NOTIFICATION_PATH = "/linear-swap-notification"
FUNDING_SUFFIX = ".funding_rate"
LIQUIDATION_SUFFIX = ".liquidation_orders"
#: channels served on the notification endpoint (the ``op`` protocol)
NOTIFICATION_CHANNELS = ("funding", "liquidations")
#: ``GET`` path of the open interest (REST only: polled)
OPEN_INTEREST_PATH = "/linear-swap-api/v1/swap_open_interest"
#: a liquidation order's ``direction`` -> our taker side
LIQUIDATION_SIDES = {"buy": "buy", "sell": "sell"}
#: Messages of a contract still waiting for its snapshot after a re-subscribe before asking again.
RESUBSCRIBE_AGAIN_AFTER = 200


class HtxSwapNormaliser(HtxNormaliser):
    """HTX USDT-margined swap frames -> records (rules in the module docstring)."""

    exchange: ClassVar[str] = EXCHANGE
    trade_id_field: ClassVar[str] = "id"
    request_again_after: ClassVar[int] = RESUBSCRIBE_AGAIN_AFTER

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: updates dropped because their contract had no snapshot on this connection
        self.dropped_unsynced = 0

    def normalise_native(self, native: str) -> str:
        if not isinstance(native, str) or native != native.upper():
            raise ParseError(f"contract code is not upper case: {str(native)[:40]!r}")
        parts = native.split("-")
        if len(parts) == 2 and all(parts):
            return f"{native}-PERP"
        if len(parts) == 3 and all(parts):
            return native  # a dated future or a contract type (BTC-USDT-CW): HTX's own name
        raise ParseError(f"unknown contract code {native[:40]!r}")

    def incremental_channel(self, rest: str) -> bool:
        return rest.startswith("depth.size_") and rest.endswith(".high_freq") and rest[11:-10].isdigit()

    def other_channel(self, rest: str) -> bool:
        return rest == MARK_CHANNEL

    def on_other(
        self, ts_recv: int, msg: dict[str, Any], tick: dict[str, Any], symbol: str, out: RecordBuffer
    ) -> None:
        """A ``mark_price.1min`` kline push: its ``close`` is the current mark price."""
        mark = positive_price(tick["close"], "mark price")
        self.emit_mark_price(out, symbol, ms_to_ns(msg["ts"]), ts_recv, mark)

    def on_control(self, ts_recv: int, msg: dict[str, Any], frame: bytes, out: RecordBuffer) -> None:
        """The notification endpoint's ``op`` messages (ping, sub answers, funding pushes); the market
        endpoints' control messages otherwise."""
        op = msg.get("op")
        if op is None:
            super().on_control(ts_recv, msg, frame, out)
        elif op == "ping":
            ts = msg.get("ts")
            if not isinstance(ts, (str, int)) or isinstance(ts, bool) or not str(ts).isdigit():
                raise ParseError("notification ping without a ts", channel="connection")
            self.replies.append(f'{{"op":"pong","ts":"{ts}"}}')
        elif op in ("sub", "unsub"):
            if msg.get("err-code") != 0:
                detail = {
                    "err_code": str(msg.get("err-code"))[:100],
                    "err_msg": str(msg.get("err-msg"))[:500],
                    **frame_text_for_event(frame),
                }
                emit_event(out, self.exchange, None, "connection", ts_recv, "subscribe_error", detail)
        elif op == "notify":
            self.on_notify(ts_recv, msg, out)
        elif op == "poll" and msg.get("generated") is True:
            self.on_open_interest(ts_recv, msg, out)
        elif op == "close" or op == "error":
            detail = {"op": op, "err_code": str(msg.get("err-code"))[:100], **frame_text_for_event(frame)}
            emit_event(out, self.exchange, None, "connection", ts_recv, "exchange_error", detail)
        else:
            raise ParseError(f"unknown op {str(op)[:20]!r}", channel="connection")

    def on_notify(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """A ``public.$contract_code.funding_rate`` or ``.liquidation_orders`` push."""
        topic = msg.get("topic")
        if isinstance(topic, str) and topic.startswith("public.") and topic.endswith(LIQUIDATION_SUFFIX):
            self.on_liquidations(ts_recv, msg, topic[len("public.") : -len(LIQUIDATION_SUFFIX)], out)
            return
        if (
            not isinstance(topic, str)
            or not topic.startswith("public.")
            or not topic.endswith(FUNDING_SUFFIX)
        ):
            raise ParseError(f"unknown notification topic {str(topic)[:80]!r}", channel="funding")
        symbol = self.symbol_books.name(topic[len("public.") : -len(FUNDING_SUFFIX)])
        data = msg["data"]
        if not isinstance(data, list) or not data:
            raise ParseError("funding push without data", symbol, "funding")
        ts_exchange = ms_to_ns(msg["ts"])
        rows = []
        for item in data:
            if not isinstance(item, dict) or item.get("contract_code") != topic[7 : -len(FUNDING_SUFFIX)]:
                raise ParseError("funding item of another contract", symbol, "funding")
            rate = funding_rate(item["funding_rate"], symbol)
            estimated = item.get("estimated_rate")
            predicted = (
                None if estimated in (None, "null", "") else funding_rate(estimated, symbol, "estimated rate")
            )
            settlement = item.get("settlement_time")
            next_time = ms_to_ns(settlement) if settlement not in (None, "null", "") else None
            rows.append((rate, predicted, next_time))
        for rate, predicted, next_time in rows:  # all parsed first: a bad item adds no row
            self.emit_funding(out, symbol, ts_exchange, ts_recv, rate, predicted, next_time)

    def on_liquidations(self, ts_recv: int, msg: dict[str, Any], native: str, out: RecordBuffer) -> None:
        """A ``public.$contract_code.liquidation_orders`` push: one row per liquidation order."""
        symbol = self.symbol_books.name(native)
        data = msg["data"]
        if not isinstance(data, list) or not data:
            raise ParseError("liquidation push without data", symbol, "liquidations")
        rows = []
        for item in data:
            if not isinstance(item, dict) or item.get("contract_code") != native:
                raise ParseError("liquidation of another contract", symbol, "liquidations")
            direction = item["direction"]
            side = LIQUIDATION_SIDES.get(direction) if isinstance(direction, str) else None
            if side is None:
                raise ParseError(
                    f"unknown liquidation direction {str(direction)[:20]!r}", symbol, "liquidations"
                )
            price = positive_price(item["price"], "liquidation price")
            size = positive_price(item["volume"], "liquidation volume")
            rows.append((ms_to_ns(item["created_at"]), side, price, size))
        for ts_exchange, side, price, size in rows:  # all parsed first: a bad item adds no row
            self.emit_liquidation(out, symbol, ts_exchange, ts_recv, None, side, price, size)

    def on_open_interest(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """A generated frame holding a polled ``swap_open_interest`` answer: one row per item."""
        if msg.get("path") != OPEN_INTEREST_PATH:
            raise ParseError(f"unknown poll path {str(msg.get('path'))[:80]!r}", channel="open_interest")
        native = msg.get("contract_code")
        symbol = self.symbol_books.name(native)
        body = msg.get("data")
        if not isinstance(body, dict) or body.get("status") != "ok":
            status = body.get("status") if isinstance(body, dict) else None
            raise ParseError(f"open interest refused (status {str(status)[:20]!r})", symbol, "open_interest")
        data = body["data"]
        if not isinstance(data, list) or not data:
            raise ParseError("open interest answer without data", symbol, "open_interest")
        ts_exchange = ms_to_ns(body["ts"])
        rows = []
        for item in data:
            if not isinstance(item, dict) or item.get("contract_code") != native:
                raise ParseError("open interest of another contract", symbol, "open_interest")
            volume = non_negative_size(item["volume"], "open interest volume")
            value = item.get("value")
            rows.append((volume, None if value is None else non_negative_size(value, "open interest value")))
        for volume, value_usdt in rows:
            self.emit_open_interest(out, symbol, ts_exchange, ts_recv, volume, value_usdt)

    def on_bbo(
        self, ts_recv: int, msg: dict[str, Any], tick: dict[str, Any], symbol: str, out: RecordBuffer
    ) -> None:
        bid_p, bid_s = bbo_level(tick.get("bid"), "bid", symbol)
        ask_p, ask_s = bbo_level(tick.get("ask"), "ask", symbol)
        version = tick.get("version")
        self.emit_bbo(
            out,
            symbol,
            ms_to_ns(tick["ts"]),
            ts_recv,
            bid_p,
            bid_s,
            ask_p,
            ask_s,
            version if isinstance(version, int) and not isinstance(version, bool) else None,
        )

    def on_incremental(
        self,
        ts_recv: int,
        msg: dict[str, Any],
        tick: dict[str, Any],
        native: str,
        symbol: str,
        out: RecordBuffer,
    ) -> None:
        event = tick["event"]
        version = int_field(tick["version"], "version", symbol)
        bids = tick.get("bids") or []
        asks = tick.get("asks") or []
        ts_exchange = ms_to_ns(tick["ts"])
        book = self.symbol_books.book(native)
        start = len(out.book)
        if event == "snapshot":
            book.apply_snapshot(out, ts_exchange, ts_recv, bids, asks, version)
            self.requested.discard(native)
            self.watch.done(native)
        elif event == "update":
            if not book.synced:
                parse_levels(bids)  # still a parse error when malformed
                parse_levels(asks)
                self.dropped_unsynced += 1
                if native in self.requested:
                    self.watch.check(out, self.exchange, native, symbol, ts_recv, self.resubscribe_requests)
                else:
                    self.request(native)
                return
            last = book.last_seq
            assert last is not None
            if version == last + 1:
                book.apply_update(out, ts_exchange, ts_recv, bids, asks, version)
                book.last_seq = version
            elif version <= last:
                parse_levels(bids)
                parse_levels(asks)
                emit_event(
                    out,
                    self.exchange,
                    symbol,
                    "book",
                    ts_recv,
                    "duplicate",
                    {"version": version, "last": last},
                )
                return
            else:
                parse_levels(bids)  # a malformed frame is a parse error, not a gap
                parse_levels(asks)
                book.gap(
                    out,
                    ts_recv,
                    "gap",
                    {"expected_version": last + 1, "version": version, "missing": version - last - 1},
                )
                self.request(native)
                return
        else:
            raise ParseError(f"unknown book event {str(event)[:20]!r}", symbol, "book")
        flags = self.time_flags.flags(ts_exchange, ts_recv)
        if flags:
            rows = out.book
            for i in range(start, len(rows)):
                rows[i] = (*rows[i][:-1], rows[i][-1] | flags)
        book.check_crossed(out, ts_recv, {"version": version})


class HtxSwapDialect(HtxDialect):
    """HTX USDT-margined swaps: endpoint, topics, re-subscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api.hbdm.com"
    ws_path: ClassVar[str] = "/linear-swap-ws"
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-USDT", "ETH-USDT")
    normaliser_class: ClassVar[type[HtxNormaliser]] = HtxSwapNormaliser
    book_depths: ClassVar[tuple[int, ...]] = (20, 150)
    default_book_depth: ClassVar[int] = 150
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest", "liquidations")
    #: REST base of the open interest polls
    default_rest_url: ClassVar[str | None] = "https://api.hbdm.com"
    open_interest_path: ClassVar[str] = OPEN_INTEREST_PATH
    index_path: ClassVar[str] = INDEX_PATH
    notification_path: ClassVar[str] = NOTIFICATION_PATH

    def native_symbol(self, symbol: str) -> str:
        """``BTC-USDT-PERP``, ``btc-usdt``, ``BTC/USDT``, ``BTCUSDT`` -> ``BTC-USDT``."""
        upper = symbol.strip().upper().replace("/", "-")
        if upper.endswith("-PERP"):
            upper = upper[: -len("-PERP")]
        if "-" not in upper:
            for quote in ("USDT", "USDC", "USD"):
                if upper.endswith(quote) and len(upper) > len(quote):
                    return f"{upper[: -len(quote)]}-{quote}"
        return upper

    def channel_groups(self, channels: Sequence[str]) -> list[tuple[str, ...]]:
        """``mark`` is served on ``/ws_index``, ``funding`` and ``liquidations`` on
        ``/linear-swap-notification``, everything else on ``/linear-swap-ws`` (whose connections also
        poll the open interest)."""
        market = tuple(c for c in channels if c != "mark" and c not in NOTIFICATION_CHANNELS)
        notification = tuple(c for c in channels if c in NOTIFICATION_CHANNELS)
        groups = [market] if market else []
        if "mark" in channels:
            groups.append(("mark",))
        if notification:
            groups.append(notification)
        return groups

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        for path in (self.ws_path, self.index_path, self.notification_path):
            if base.endswith(path):
                base = base[: -len(path)]
        if "mark" in sub.channels:
            return base + self.index_path
        notification = any(c in NOTIFICATION_CHANNELS for c in sub.channels)
        return base + (self.notification_path if notification else self.ws_path)

    def rest_polls(self, sub: Subscription) -> list[tuple[str, str]]:
        """Open interest of every contract of the connection that carries it (REST only)."""
        if "open_interest" not in sub.channels:
            return []
        return [("open_interest", s) for s in sub.symbols]

    async def fetch_poll(self, http: aiohttp.ClientSession, rest_url: str, channel: str, key: str) -> str:
        """``GET swap_open_interest?contract_code=`` wrapped as a generated frame; an answer whose
        ``status`` is not ``ok`` raises ``ClientResponseError`` (HTX refuses with HTTP 200)."""
        import aiohttp

        url = f"{rest_url.rstrip('/')}{self.open_interest_path}"
        async with http.get(url, params={"contract_code": key}) as resp:
            resp.raise_for_status()
            body = await resp.read()
            try:
                answer = orjson.loads(body)
            except orjson.JSONDecodeError:
                answer = None
            if not isinstance(answer, dict) or answer.get("status") != "ok":
                code = answer.get("err_code") if isinstance(answer, dict) else None
                raise aiohttp.ClientResponseError(
                    resp.request_info,
                    resp.history,
                    status=502,
                    message=f"open interest refused (err_code {str(code)[:20]!r})",
                    headers=resp.headers,
                )
        return open_interest_frame(key, body)

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        frames = []
        for native in sub.symbols:
            for topic in self.topics(native, sub.channels):
                if topic.startswith("public."):
                    frames.append(
                        orjson.dumps({"op": "sub", "cid": f"sub-{next(self._ids)}", "topic": topic}).decode()
                    )
                else:
                    frames.append(self.sub_frame(topic))
        return frames

    def topics(self, native: str, channels: Sequence[str]) -> list[str]:
        names = {
            "trades": f"market.{native}.trade.detail",
            "book": f"market.{native}.depth.size_{self.book_depth}.high_freq",
            "bbo": f"market.{native}.bbo",
            "mark": f"market.{native}.{MARK_CHANNEL}",
            "funding": f"public.{native}{FUNDING_SUFFIX}",
            "liquidations": f"public.{native}{LIQUIDATION_SUFFIX}",
        }
        return [names[c] for c in channels if c in names]  # open interest has no topic: it is polled

    def sub_frame(self, topic: str, op: str = "sub") -> str:
        if topic.endswith(".high_freq"):
            return f'{{"{op}":"{topic}","data_type":"incremental","id":"{op}-{next(self._ids)}"}}'
        return super().sub_frame(topic, op)

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """``unsub`` then ``sub`` of the book topics: HTX answers a subscribe with a snapshot."""
        if "book" not in sub.channels:
            return []
        topics = [t for n in native_symbols for t in self.topics(n, ("book",))]
        return [self.sub_frame(t, "unsub") for t in topics] + [self.sub_frame(t) for t in topics]

    # -- instruments (collectors/venues/htx_gate_instruments.py) ---------------------------------
    instruments_rest_url: ClassVar[str | None] = "https://api.hbdm.com"

    def instruments_paths(self) -> list[str]:
        return [htx_gate_instruments.HTX_SWAP_PATH + htx_gate_instruments.HTX_SWAP_QUERY]

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return htx_gate_instruments.parse_htx_swap_contracts(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import HtxSwapSimulator

        return HtxSwapSimulator(self, config)


def open_interest_frame(contract_code: str, body: str | bytes) -> str:
    """A ``swap_open_interest`` answer wrapped as a generated capture frame (DESIGN.md, capture format)."""
    text = body.decode() if isinstance(body, bytes) else body
    code = orjson.dumps(contract_code).decode()
    return (
        f'{{"op":"poll","generated":true,"path":"{OPEN_INTEREST_PATH}","contract_code":{code},"data":{text}}}'
    )


DIALECT_CLASS = HtxSwapDialect
