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

Derivatives channels (issue 15): ``mark`` and ``funding``, each on its own endpoint and connections
(:meth:`HtxSwapDialect.channel_groups`); pages checked 2026-12-05 through stored copies:
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
Not offered: ``liquidations`` (``public.$contract_code.liquidation_orders`` on the same notification
endpoint: not implemented yet; one third-party client reports it withdrawn, not verified) and
``open_interest`` (no websocket push: REST ``/linear-swap-api/v1/swap_open_interest`` only, not polled
yet). Not verified: how often a live ``mark_price.1min`` or ``funding_rate`` pushes.

The shared recordings (2022, cryptofeed) use ``market.$contract_code.depth.step0`` (a full book per
message, read as described in :mod:`.common`; its ``version`` is a second count, not a sequence) on
``linear-swap-ws`` and, in the other file, on the coin-margined ``swap-ws`` (``BTC-USD``, read the same
way); they have no ``bbo`` and no ``high_freq`` book.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from schemas import RecordBuffer

from ...base import CHANNELS, Subscription
from ...book import ResyncWatch, parse_levels
from ...events import ParseError, emit_event, frame_text_for_event, funding_rate, ms_to_ns, positive_price
from ...instruments import Instrument
from ...simulator import ExchangeSimulator, SimulatorConfig
from .. import htx_gate_instruments
from .common import HtxDialect, HtxNormaliser, bbo_level, int_field

EXCHANGE = "htx-swap"
#: the mark-price kline channel (after the contract code) and the endpoint serving it
MARK_CHANNEL = "mark_price.1min"
INDEX_PATH = "/ws_index"
NOTIFICATION_PATH = "/linear-swap-notification"
FUNDING_SUFFIX = ".funding_rate"
#: Messages of a contract still waiting for its snapshot after a re-subscribe before asking again.
RESUBSCRIBE_AGAIN_AFTER = 200


class HtxSwapNormaliser(HtxNormaliser):
    """HTX USDT-margined swap frames -> records (rules in the module docstring)."""

    exchange: ClassVar[str] = EXCHANGE
    trade_id_field: ClassVar[str] = "id"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: contracts with a re-subscribe in flight
        self.awaiting: set[str] = set()
        self.watch = ResyncWatch(RESUBSCRIBE_AGAIN_AFTER)
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
        elif op == "close" or op == "error":
            detail = {"op": op, "err_code": str(msg.get("err-code"))[:100], **frame_text_for_event(frame)}
            emit_event(out, self.exchange, None, "connection", ts_recv, "exchange_error", detail)
        else:
            raise ParseError(f"unknown op {str(op)[:20]!r}", channel="connection")

    def on_notify(self, ts_recv: int, msg: dict[str, Any], out: RecordBuffer) -> None:
        """A ``public.$contract_code.funding_rate`` push: one funding row per item of ``data``."""
        topic = msg.get("topic")
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

    def request(self, native: str) -> None:
        """Asks the connection to re-subscribe ``native``'s book (once while one is in flight)."""
        if native not in self.awaiting:
            self.awaiting.add(native)
            self.resubscribe_requests.add(native)

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
            self.awaiting.discard(native)
            self.watch.done(native)
        elif event == "update":
            if not book.synced:
                parse_levels(bids)  # still a parse error when malformed
                parse_levels(asks)
                self.dropped_unsynced += 1
                if native in self.awaiting:
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

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        super().on_disconnect(ts_recv, out)
        self.awaiting.clear()
        self.watch.waiting.clear()


class HtxSwapDialect(HtxDialect):
    """HTX USDT-margined swaps: endpoint, topics, re-subscription, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://api.hbdm.com"
    ws_path: ClassVar[str] = "/linear-swap-ws"
    demo_symbols: ClassVar[tuple[str, ...]] = ("BTC-USDT", "ETH-USDT")
    normaliser_class: ClassVar[type[HtxNormaliser]] = HtxSwapNormaliser
    book_depths: ClassVar[tuple[int, ...]] = (20, 150)
    default_book_depth: ClassVar[int] = 150
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark")
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
        """``mark`` is served on ``/ws_index``, ``funding`` on ``/linear-swap-notification``,
        everything else on ``/linear-swap-ws``."""
        market = tuple(c for c in channels if c not in ("mark", "funding"))
        groups = [market] if market else []
        groups += [(c,) for c in ("mark", "funding") if c in channels]
        return groups

    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        base = ws_url.rstrip("/")
        for path in (self.ws_path, self.index_path, self.notification_path):
            if base.endswith(path):
                base = base[: -len(path)]
        if "mark" in sub.channels:
            return base + self.index_path
        return base + (self.notification_path if "funding" in sub.channels else self.ws_path)

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
        }
        return [names[c] for c in channels]

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


DIALECT_CLASS = HtxSwapDialect
