"""KuCoin futures (exchange id ``kucoin-futures``): classic futures websocket, USDT-margined perpetuals.

Documentation followed (checked 2026-12-05):
- https://www.kucoin.com/docs-new/3470082w0 (``/contractMarket/level2`` Orderbook - Increment)
- https://www.kucoin.com/docs-new/3470084w0 (``/contractMarket/execution`` Trade)
- https://www.kucoin.com/docs-new/3470080w0 (``/contractMarket/tickerV2`` Ticker V2, real-time BBO)
- https://www.kucoin.com/docs-new/api-3470224 (GET ``/api/v1/level2/snapshot``, public, weight 3)
- https://www.kucoin.com/docs-new/api-3470297 (POST ``/api/v1/bullet-public`` on api-futures.kucoin.com)
plus the shared rules in :mod:`collectors.venues.kucoin.client`. The futures host hands out its own
tokens (a spot token does not open the futures endpoint).

Topics (one symbol per topic, as documented: ``/contractMarket/level2:XBTUSDTM``):
- ``/contractMarket/execution`` (subject ``match``): ``{symbol, sequence, side, size, price, tradeId,
  takerOrderId, makerOrderId, ts}``; ``side`` is the taker's side, ``ts`` nanoseconds (older pushes
  named it ``time`` and sent the filled quantity as ``matchSize``, ``size`` being the unfilled rest:
  https://www.kucoin.com/docs/websocket/futures-trading/public-channels/match-execution-data; both
  forms are accepted), ``size`` an integer number of contracts (lots).
- ``/contractMarket/level2`` (``level2``): one change per message, ``{sequence, change:
  "price,side,size", timestamp (ms)}``; the sequence increments by one per change, so the shared rule
  reduces to "each message is the previous sequence + 1". Synced with ``GET /api/v1/level2/snapshot``
  (full depth, ``{sequence, symbol, bids, asks, ts (ns)}`` with numeric prices and sizes).
- ``/contractMarket/tickerV2`` (``tickerV2``) for the best bid/offer: ``{symbol, sequence, bestBidPrice,
  bestBidSize, bestAskPrice, bestAskSize, ts (ns)}``, pushed on every book change; its ``sequence`` is
  the level-2 sequence ("shares the sn and sequence fields with" ``/contractMarket/level2``), so its rows
  compare with the rebuilt book at an equal ``seq``. Older pushes had no ``sequence`` (``seq`` null) and
  numeric prices; both are accepted.

Derivatives channels (issue 15): ``funding`` and ``mark``, both from one topic,
``/contract/instrument:{symbol}`` (https://www.kucoin.com/docs-new/3470087w0, checked 2026-12-05; the
classic page https://www.kucoin.com/docs/websocket/futures-trading/public-channels/contract-market-data
shows the same fields). Two subjects:
- ``mark.index.price`` (every second): ``{markPrice, indexPrice, granularity, timestamp (ms)}`` -> one
  ``mark_price`` row (mark and index as sent, numbers);
- ``funding.rate`` (every minute): ``{fundingRate, granularity, timestamp (ms)}`` -> one ``funding`` row
  with ``funding_rate`` = fundingRate (the rate of the current interval as KuCoin publishes it each
  minute; the message carries no separate predicted rate and no next funding time, so both are null).
Other subjects of the topic are ignored without a row. Push cadence as docs-new 3470087 states it:
``mark.index.price`` every second, ``funding.rate`` every minute. Prices and rates are JSON numbers in
both the docs-new and the classic examples (confirmed 2026-12-05); decimal strings are accepted too.

``open_interest`` is REST only: none of the public futures websocket topics carries it (Ticker V1
https://www.kucoin.com/docs-new/3470081w0, Ticker V2 3470080w0, level2 3470082w0, execution 3470084w0,
``/contract/instrument`` 3470087w0, ``/contract/announcement`` 3470088w0, and
``/contractMarket/snapshot`` with ``highPrice, lastPrice, lowPrice, price, priceChg, priceChgPct,
symbol, ts, turnover, volume``; checked 2026-12-05). It is polled: ``GET /api/v1/contracts/{symbol}``
("Get Symbol Detail", public weight 3;
https://www.kucoin.com/docs/rest/futures-trading/market-data/get-symbol-detail, checked 2026-12-05)
answers ``{"code":"200000","data":{"symbol", ..., "openInterest": "6273644", "markPrice",
"indexPrice", "fundingFeeRate", ...}}``. Each connection that carries the channel polls each of its
symbols every :attr:`ExchangeDialect.poll_interval_s` (10 s; slower when a round would spend more than
a quarter of the REST budget, ``collectors.connection.POLL_BUDGET_SHARE``) and injects the answer as a
generated frame ``{"type":"poll","generated":true,"topic":"/api/v1/contracts:<symbol>","data":<body>}``
(:func:`collectors.venues.kucoin.client.poll_frame`), so the capture holds it and a replay gives the
live rows. One ``open_interest`` row per answer: ``openInterest`` (a decimal string) in contracts
(lots, as every size here), no value; the answer carries no time, so ``ts_exchange`` is null. An
answer with another code (KuCoin refuses with HTTP 200 and e.g. ``429000``) is a ``rest_error`` event,
not a frame.

``liquidations``: not offered. KuCoin futures' public websocket has no liquidation topic (the pages
above); the only liquidation push found is the private ``/liquidationWarning`` risk notice about the
account's own positions (https://www.kucoin.com/docs-new/3470236w0, checked 2026-12-05).

Sizes (trades, book, bbo) are in contracts, exactly as KuCoin sends them; one contract is the
contract's ``multiplier`` of the base currency (0.001 BTC for XBTUSDTM, from GET /api/v1/contracts/
{symbol}), which belongs in the ``instruments`` dataset (``contract_size``), not in every row.

Symbols: ``XBTUSDTM`` -> ``BTC-USDT-PERP`` (KuCoin calls bitcoin XBT), ``ETHUSDTM`` -> ``ETH-USDT-PERP``,
``...USDCM`` -> ``-USDC-PERP``, inverse ``XBTUSDM`` -> ``BTC-USD-PERP``; dated futures (``XBTMZ25``) keep
KuCoin's name. Topics take one symbol each, so a connection carries at most 10 symbols with every channel
(six channels counted against 60; four topics each, 40 subscribe messages: KuCoin allows 100 client
messages per 10 s, pings included).

No real futures recording is shared: the tests use the documented message examples above and the
simulator.

Instruments: ``GET /api/v1/contracts/active`` (public, weight 3;
https://www.kucoin.com/docs-new/rest/futures-trading/market-data/get-all-symbols, checked 2026-12-05,
the same items as GET /api/v1/contracts/{symbol}): ``{"code": "200000", "data": [{"symbol":
"XBTUSDTM", "type": "FFWCSX" (perpetual) | "FFICSX" (dated future), "baseCurrency": "XBT",
"quoteCurrency": "USDT", "settleCurrency": "USDT", "expireDate": ms or null, "tickSize": 0.1,
"lotSize": 1, "multiplier": 0.001, "isInverse": false, "status": "Open", ...}]}``. ``tickSize`` is the
tick, ``lotSize`` the lot (in contracts, as every size here), ``|multiplier|`` the contract size (base
units for a linear contract: 0.001 BTC; quote units for an inverse one, whose multiplier is -1: 1 USD);
``XBT`` is written ``BTC`` (base and settle); ``status`` ``Open`` is trading, the others (``Init``, ``BeingSettled``, ``Settled``, ``Paused``,
``Closed``, ``CancelOnly``) are written lower-case.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote as url_quote

import aiohttp
import orjson

from schemas import RecordBuffer

from ...base import CHANNELS, Normaliser, Subscription
from ...book import ASK, BID
from ...events import ParseError, check_symbol, funding_rate, ms_to_ns, non_negative_size, positive_price
from ...instruments import TRADING, Instrument, build_all, positive
from ...instruments import ms_to_ns as ms_to_ns_or_none
from ...simulator import ExchangeSimulator, SimulatorConfig
from .client import (
    OK_CODE,
    Increment,
    KucoinDialect,
    KucoinNormaliser,
    ns_time,
    parse_change,
    parse_sequence,
    poll_frame,
    refused_unless_ok,
    taker_side,
)

EXCHANGE = "kucoin-futures"
CONTRACTS_PATH = "/api/v1/contracts/active"
#: ``type`` -> our kind
CONTRACT_KINDS = {"FFWCSX": "perpetual", "FFICSX": "future"}
SNAPSHOT_TOPIC = "/contractMarket/level2Snapshot"
#: ``GET <CONTRACT_PATH>/{symbol}``: the contract's detail, polled for its ``openInterest``; also the
#: topic prefix of the generated poll frames
CONTRACT_PATH = "/api/v1/contracts"
#: public weight of one ``GET /api/v1/contracts/{symbol}``
CONTRACT_WEIGHT = 3
INSTRUMENT_TOPIC = "/contract/instrument"
#: perpetual suffixes -> quote currency
PERP_SUFFIXES: tuple[tuple[str, str], ...] = (("USDTM", "USDT"), ("USDCM", "USDC"), ("USDM", "USD"))
#: KuCoin's base-currency names that differ from the usual ones
BASE_ALIASES = {"XBT": "BTC"}
NATIVE_BASES = {v: k for k, v in BASE_ALIASES.items()}


def normalise_contract(native: str) -> str:
    """``XBTUSDTM`` -> ``BTC-USDT-PERP``; other contracts keep KuCoin's name."""
    for suffix, quote in PERP_SUFFIXES:
        if native.endswith(suffix) and len(native) > len(suffix):
            base = native[: -len(suffix)]
            return f"{BASE_ALIASES.get(base, base)}-{quote}-PERP"
    return native


class KucoinFuturesNormaliser(KucoinNormaliser):
    """KuCoin futures frames -> records."""

    exchange: ClassVar[str] = EXCHANGE
    snapshot_topic: ClassVar[str] = SNAPSHOT_TOPIC

    def normalise_native(self, native: Any) -> str:
        if not isinstance(native, str):
            raise ParseError(f"symbol is not a string: {str(native)[:40]!r}")
        return normalise_contract(native)

    def on_data(
        self, ts_recv: int, prefix: str, native: str, data: dict[str, Any], out: RecordBuffer, subject: Any
    ) -> None:
        if prefix == "/contractMarket/level2":
            self.on_level2(ts_recv, native, data, out)
        elif prefix == "/contractMarket/execution":
            self.on_execution(ts_recv, native, data, out)
        elif prefix == "/contractMarket/tickerV2":
            self.on_ticker(ts_recv, native, data, out)
        elif prefix == INSTRUMENT_TOPIC:
            self.on_instrument(ts_recv, native, data, out, subject)
        else:
            raise ParseError(f"unknown topic {prefix[:60]!r}")

    def on_execution(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``/contractMarket/execution`` message: one trade (size in contracts)."""
        price = positive_price(data["price"])
        # the pre-2024 format sent the filled quantity as matchSize (and size was the unfilled rest)
        size = positive_price(data["matchSize"] if "matchSize" in data else data["size"], "size")
        side = taker_side(data.get("side"))
        ts = data["ts"] if "ts" in data else data["time"]
        self.trade(out, native, ns_time(ts, "trade time"), ts_recv, data["tradeId"], price, size, side)

    def on_ticker(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``/contractMarket/tickerV2`` message: one bbo row at the book's sequence."""
        symbol = self.symbols.name(native)
        seq = parse_sequence(data["sequence"]) if "sequence" in data else None  # absent before 2024
        bid_price, bid_size = _side(data["bestBidPrice"], data["bestBidSize"], "bid")
        ask_price, ask_size = _side(data["bestAskPrice"], data["bestAskSize"], "ask")
        ts_exchange = ns_time(data["ts"], "ticker ts")
        self.emit_bbo(out, symbol, ts_exchange, ts_recv, bid_price, bid_size, ask_price, ask_size, seq)

    def on_instrument(
        self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer, subject: Any
    ) -> None:
        """A ``/contract/instrument`` message: ``mark.index.price`` or ``funding.rate``."""
        if subject == "mark.index.price":
            symbol = self.symbols.name(native)
            mark = positive_price(data["markPrice"], "mark price")
            index = data.get("indexPrice")
            index_price = positive_price(index, "index price") if index is not None else None
            self.emit_mark_price(out, symbol, ms_to_ns(data["timestamp"]), ts_recv, mark, index_price)
        elif subject == "funding.rate":
            symbol = self.symbols.name(native)
            rate = funding_rate(data["fundingRate"], symbol)
            self.emit_funding(out, symbol, ms_to_ns(data["timestamp"]), ts_recv, rate)

    def on_poll(self, ts_recv: int, prefix: str, native: str, body: Any, out: RecordBuffer) -> None:
        """A polled ``GET /api/v1/contracts/{symbol}`` answer: one ``open_interest`` row (contracts, no
        exchange time: the answer carries none)."""
        if prefix != CONTRACT_PATH:
            raise ParseError(f"unexpected poll topic {prefix[:60]!r}", channel="open_interest")
        symbol = self.symbols.name(native)
        if (
            not isinstance(body, dict)
            or body.get("code") != OK_CODE
            or not isinstance(body.get("data"), dict)
        ):
            code = body.get("code") if isinstance(body, dict) else None
            raise ParseError(f"contract answer refused (code {str(code)[:20]!r})", symbol, "open_interest")
        data = body["data"]
        if data.get("symbol") != native:
            raise ParseError("contract answer of another symbol", symbol, "open_interest")
        open_interest = non_negative_size(data["openInterest"], "openInterest")
        self.emit_open_interest(out, symbol, None, ts_recv, open_interest)

    def on_level2(self, ts_recv: int, native: str, data: dict[str, Any], out: RecordBuffer) -> None:
        """A ``/contractMarket/level2`` message: one change ``"price,side,size"`` at one sequence."""
        symbol = self.symbols.name(native)
        seq = parse_sequence(data["sequence"])
        change = data["change"]
        parts = change.split(",") if isinstance(change, str) else []
        if len(parts) != 3 or parts[1] not in ("buy", "sell"):
            raise ParseError(f"level2 change is not 'price,side,size': {str(change)[:60]!r}", symbol, "book")
        side = BID if parts[1] == "buy" else ASK
        ts = data.get("timestamp")
        ts_exchange = ms_to_ns(ts) if ts is not None else None
        inc = Increment(seq, seq, ts_exchange, [parse_change(seq, side, parts[0], parts[2])])
        self.on_increment(ts_recv, native, inc, out)

    def snapshot_time(self, data: dict[str, Any]) -> int | None:
        ts = data.get("ts")
        return ns_time(ts, "snapshot ts") if ts is not None else None


def _side(price: Any, size: Any, what: str) -> tuple[float | None, float | None]:
    """One side of a tickerV2; an empty side (price 0 or absent) becomes nulls."""
    if price in (None, "", "0", 0):
        return None, None
    return positive_price(price, f"{what} price"), non_negative_size(size, f"{what} size")


def parse_contracts(dialect: KucoinDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``contracts/active`` answer (module docstring)."""
    answer = orjson.loads(body)
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"contracts/active: not a contract list: {str(answer)[:120]}")

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = CONTRACT_KINDS.get(item.get("type"))  # type: ignore[arg-type]
        if kind is None:
            return None
        native = item["symbol"]
        if not isinstance(native, str):
            raise TypeError("symbol is not a string")
        base = str(item["baseCurrency"])
        status = str(item["status"])
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind=kind,
            base=BASE_ALIASES.get(base, base),
            quote=str(item["quoteCurrency"]),
            settle=BASE_ALIASES.get(str(item["settleCurrency"]), str(item["settleCurrency"])),
            tick_size=positive(item["tickSize"]),
            lot_size=positive(item["lotSize"]),
            contract_size=positive(abs(float(item["multiplier"]))),
            expiry=ms_to_ns_or_none(item.get("expireDate")) if kind == "future" else None,
            strike=None,
            option_type=None,
            status=TRADING if status == "Open" else status.lower(),
            ts_recv=ts_recv,
        )

    return build_all(data, build)


class KucoinFuturesDialect(KucoinDialect):
    """KuCoin futures: endpoints, token flow, subscriptions, snapshots, simulator."""

    exchange_id: ClassVar[str] = EXCHANGE
    default_ws_url: ClassVar[str] = "wss://ws-api-futures.kucoin.com"
    default_rest_url: ClassVar[str | None] = "https://api-futures.kucoin.com"
    demo_symbols: ClassVar[tuple[str, ...]] = ("XBTUSDTM", "ETHUSDTM")
    #: one symbol per topic and per subscribe message: 60 // 6 channels = 10 symbols, 40 topics at connect
    #: (funding and mark share a topic; open interest has none: it is polled)
    max_streams_per_connection: ClassVar[int] = 60
    symbols_per_topic: ClassVar[int] = 1
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, "funding", "mark", "open_interest")
    topics: ClassVar[dict[str, str]] = {
        "trades": "/contractMarket/execution",
        "book": "/contractMarket/level2",
        "bbo": "/contractMarket/tickerV2",
        "funding": INSTRUMENT_TOPIC,
        "mark": INSTRUMENT_TOPIC,
    }
    snapshot_path: ClassVar[str] = "/api/v1/level2/snapshot"
    snapshot_topic: ClassVar[str] = SNAPSHOT_TOPIC
    snapshot_weight: ClassVar[int] = 3

    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip().upper()
        if s.endswith("-PERP"):
            base, _, quote = s[: -len("-PERP")].partition("-")
            suffix = next((suf for suf, q in PERP_SUFFIXES if q == quote), None)
            if not base or suffix is None:
                raise ValueError(f"kucoin-futures has no perpetual for {symbol!r}")
            return f"{NATIVE_BASES.get(base, base)}{suffix}"
        return s

    def normalise_symbol(self, native: str) -> str:
        return check_symbol(normalise_contract(native.strip().upper()))

    def new_normaliser(self) -> Normaliser:
        return KucoinFuturesNormaliser()

    def rest_polls(self, sub: Subscription) -> list[tuple[str, str]]:
        """Open interest of every symbol of the connection (REST only, see the module docstring)."""
        if "open_interest" not in sub.channels:
            return []
        return [("open_interest", s) for s in sub.symbols]

    def poll_request_weight(self, channel: str, key: str) -> int:
        return CONTRACT_WEIGHT

    async def fetch_poll(self, http: aiohttp.ClientSession, rest_url: str, channel: str, key: str) -> str:
        """``GET /api/v1/contracts/{symbol}`` wrapped as a generated poll frame."""
        async with http.get(f"{rest_url.rstrip('/')}{CONTRACT_PATH}/{url_quote(key, safe='')}") as resp:
            resp.raise_for_status()
            body = await resp.read()
            refused_unless_ok(resp, body, "contract detail")
        return poll_frame(CONTRACT_PATH, key, body)

    def instruments_paths(self) -> list[str]:
        return [CONTRACTS_PATH]

    def instruments_request_weight(self, path: str) -> int:
        return 3

    def parse_instruments(self, body: str | bytes, ts_recv: int) -> list[Instrument]:
        return parse_contracts(self, body, ts_recv)

    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        from .simulator import KucoinFuturesSimulator

        return KucoinFuturesSimulator(self, config)


DIALECT_CLASS = KucoinFuturesDialect
