"""Instruments of gemini, crypto-com, bitfinex and upbit: the parsers on real recorded answers
(../shared/samples) and on each venue's documented examples, hostile bodies, and the collector's
``all``/glob resolution against each venue's simulator over real REST and websockets.

Documented bodies follow the pages cited in the parser modules (checked 2026-12-05):
- gemini: https://docs.gemini.com/rest/market-data (Get Symbol Details; the example's fields and values);
- crypto-com: https://exchange-developer.crypto.com/exchange/v1/docs/api/rest/public-get-instruments
  (the 200 example, verbatim) and the ``CCY_PAIR`` example of the previous rendering
  https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-instruments;
- bitfinex: https://docs.bitfinex.com/reference/rest-public-conf and
  https://docs.bitfinex.com/reference/rest-public-tickers (fields in the documented order);
- upbit: https://docs.upbit.com/kr/reference/list-orderbook-instruments (the documented fields).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from collectors.connection import Collector
from collectors.instruments import Instrument, significant_increment
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues import gemini_instruments, upbit_instruments
from schemas import RecordBuffer
from tests.collectors.test_connection import FAST

TS = 1_700_000_000_000_000_000
MS = 1_000_000


def by_native(instruments: list[Instrument]) -> dict[str, Instrument]:
    return {i.native_symbol: i for i in instruments}


def recorded(samples: Path, venue: str) -> list[tuple[str, int, str]]:
    """(url, ts_ns, body) of every recorded REST answer of a venue's shared recording."""
    out = []
    with gzip.open(samples / venue / f"{venue}_cryptofeed.requests.jsonl.gz", "rt") as fh:
        for line in fh:
            rest = json.loads(line).get("rest")
            if rest:
                out.append((rest["url"], rest["ts_ns"], rest["body"]))
    return out


# -- gemini ---------------------------------------------------------------------------------------------


def test_gemini_every_recorded_symbol_and_its_details(samples: Path) -> None:
    """The 2026-08 recording: ``/v1/symbols`` and the details of each of its 347 symbols. Every symbol
    gives one instrument whose tick is Gemini's ``quote_increment`` and lot its ``tick_size``."""
    dialect = get_dialect("gemini")
    answers = recorded(samples, "gemini")
    ((_url, _ts, listing),) = [a for a in answers if a[0].endswith("/v1/symbols")]
    natives = gemini_instruments.parse_symbols(listing)
    details = [a for a in answers if "/v1/symbols/details/" in a[0]]
    assert len(natives) == len(details) == 347
    parsed: dict[str, Instrument] = {}
    for url, ts, body in details:
        (inst,) = dialect.parse_instruments(body, ts)
        item = orjson.loads(body)
        assert url.endswith("/" + inst.native_symbol.lower()) and inst.native_symbol == item["symbol"]
        assert (inst.tick_size, inst.lot_size) == (item["quote_increment"], item["tick_size"])
        assert (inst.base, inst.quote, inst.ts_recv) == (item["base_currency"], item["quote_currency"], ts)
        assert inst.symbol == dialect.normalise_symbol(inst.native_symbol)
        # the websocket's name agrees with the venue's own base and quote (PAXGUSD is PAXG-USD)
        assert inst.symbol.removesuffix("-PERP") == f"{item['base_currency']}-{item['quote_currency']}"
        parsed[inst.native_symbol] = inst
    assert sorted(parsed) == sorted(natives)
    perps = [i for i in parsed.values() if i.kind == "perpetual"]
    assert len(perps) == 13 and all(i.symbol.endswith("-PERP") and i.contract_size == 1.0 for i in perps)
    # a perpetual settles in its collateral currency, which can differ from its quote
    eth_usdc = parsed["ETHUSDCPERP"]
    assert (eth_usdc.symbol, eth_usdc.quote, eth_usdc.settle, eth_usdc.tick_size) == (
        "ETH-USDC-PERP",
        "USDC",
        "GUSD",
        0.05,
    )
    statuses = sorted(i.status for i in parsed.values() if not i.trading)
    assert statuses == ["closed", "closed", "limit_only", "limit_only"]
    # quotes only these two symbols use, now split (they were unnameable before)
    assert parsed["JITOSOLSOL"].symbol == "JITOSOL-SOL" and parsed["EFILFIL"].symbol == "EFIL-FIL"
    # the textual split of two names is ambiguous (PAX in GUSD?): they are PAXG and USDG in USD
    assert (parsed["PAXGUSD"].symbol, parsed["PAXGUSD"].base, parsed["PAXGUSD"].quote) == (
        "PAXG-USD",
        "PAXG",
        "USD",
    )
    assert parsed["USDGUSD"].symbol == "USDG-USD"


def test_gemini_documented_details_example_and_hostile_bodies() -> None:
    dialect = get_dialect("gemini")
    documented = {
        "symbol": "BTCUSD", "base_currency": "BTC", "quote_currency": "USD", "tick_size": 1e-8,
        "quote_increment": 0.01, "min_order_size": "0.00001", "status": "open", "wrap_enabled": False,
        "product_type": "spot", "contract_type": "vanilla", "contract_price_currency": "USD",
    }  # fmt: skip
    (btc,) = dialect.parse_instruments(orjson.dumps(documented), TS)
    assert btc == Instrument(
        "gemini", "BTC-USD", "BTCUSD", "spot", "BTC", "USD", None, 0.01, 1e-8, None, None, None, None, "trading", TS
    )  # fmt: skip
    # unusable fields leave the symbol out (never a crash); other product types are not collected
    for bad in (
        {"quote_increment": -0.01},
        {"quote_increment": "abc"},
        {"tick_size": True},
        {"tick_size": float("inf")},
        {"quote_increment": None},
        {"symbol": "BTC/../USD"},
        {"symbol": 12},
        {"product_type": "option"},
        {"base_currency": None},
        {"contract_price_currency": 5, "product_type": "swap", "symbol": "BTCGUSDPERP"},
        {"status": None},
        {"symbol": "ZZZ"},
    ):
        assert dialect.parse_instruments(orjson.dumps({**documented, **bad}), TS) == [], bad
    missing = dict(documented)
    del missing["quote_increment"]
    assert dialect.parse_instruments(orjson.dumps(missing), TS) == []
    for body in (b"{not json", b"[]", b"null", b'{"result":"error","reason":"InvalidSymbol","message":"x"}'):
        with pytest.raises(ValueError):
            dialect.parse_instruments(body, TS)
    with pytest.raises(ValueError, match="InvalidSymbol"):
        gemini_instruments.parse_symbols(b'{"result":"error","reason":"InvalidSymbol","message":"x"}')
    # names go into a request path: anything but plain alphanumerics is left out
    assert gemini_instruments.parse_symbols(b'["btcusd", "../admin", 7, "eth usd", "btcusd", "ETHBTC"]') == [
        "BTCUSD",
        "ETHBTC",
    ]


async def gemini_rest(symbols: Any, details: Any) -> web.AppRunner:
    """A real HTTP server on loopback answering Gemini's list and details paths with these handlers."""
    app = web.Application()
    app.add_routes([web.get("/v1/symbols", symbols), web.get("/v1/symbols/details/{symbol}", details)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_gemini_details_are_paced_and_a_vanished_symbol_is_skipped() -> None:
    """A real HTTP server: a listed symbol whose details answer 400 (delisted meanwhile) is left out;
    details requests go out in bursts within the pacing window; a 429 fails the fetch."""
    documented = {
        "symbol": "BTCUSD", "base_currency": "BTC", "quote_currency": "USD", "tick_size": 1e-8,
        "quote_increment": 0.01, "min_order_size": "0.00001", "status": "open", "product_type": "spot",
        "contract_type": "vanilla", "contract_price_currency": "USD",
    }  # fmt: skip
    listing = ["btcusd", "gone1", "gone2", "gone3", "gone4", "gone5", "gone6"]
    times: list[float] = []
    limited: list[bool] = [False]

    async def symbols(request: web.Request) -> web.Response:
        return web.json_response(listing)

    async def details(request: web.Request) -> web.Response:
        times.append(time.monotonic())
        if limited[0]:
            return web.json_response({"result": "error", "reason": "RateLimited"}, status=429)
        if request.match_info["symbol"] == "btcusd":
            return web.json_response(documented)
        return web.json_response({"result": "error", "reason": "InvalidSymbol", "message": "x"}, status=400)

    runner = await gemini_rest(symbols, details)
    port = runner.addresses[0][1]
    dialect = get_dialect("gemini")
    dialect.details_burst, dialect.details_window_s = 3, 0.4  # type: ignore[misc]
    spent: list[int] = []

    async def spend(weight: int) -> None:
        spent.append(weight)

    try:
        async with aiohttp.ClientSession() as http:
            got = await dialect.fetch_instruments(http, f"http://127.0.0.1:{port}", spend)
            assert [i.native_symbol for i in got] == ["BTCUSD"]
            assert len(spent) == 8 and len(times) == 7  # the list, then one details request per symbol
            # at most 3 requests (the list included) in any 0.4 s window
            stamps = sorted(times)
            assert stamps[-1] - stamps[0] >= 0.4 * 2 - 0.05
            limited[0] = True
            with pytest.raises(aiohttp.ClientResponseError) as err:
                await dialect.fetch_instruments(http, f"http://127.0.0.1:{port}")
            assert err.value.status == 429
    finally:
        await runner.cleanup()


async def test_gemini_refresh_reads_new_symbols_and_a_few_known_ones() -> None:
    """Later fetches read the list, every new symbol's details and at most ``reverify`` known symbols'
    (the longest unread first); a changed known symbol shows once it is re-read, a symbol gone from
    the list is gone from the instruments."""
    details: dict[str, dict[str, object]] = {
        name: {
            "symbol": name.upper(), "base_currency": name[:3].upper(), "quote_currency": "USD",
            "tick_size": 1e-8, "quote_increment": 0.01, "min_order_size": "0.00001", "status": "open",
            "product_type": "spot", "contract_type": "vanilla", "contract_price_currency": "USD",
        }
        for name in ("btcusd", "ethusd", "solusd", "ltcusd")
    }  # fmt: skip
    listing = ["btcusd", "ethusd", "ltcusd"]
    asked: list[str] = []

    async def symbols(request: web.Request) -> web.Response:
        return web.json_response(listing)

    async def detail(request: web.Request) -> web.Response:
        asked.append(request.match_info["symbol"])
        return web.json_response(details[request.match_info["symbol"]])

    runner = await gemini_rest(symbols, detail)
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    dialect = get_dialect("gemini")
    dialect.details_burst, dialect.details_window_s = 50, 0.01  # type: ignore[misc]
    dialect.details_cache.reverify = 1  # type: ignore[attr-defined]

    async def fetch() -> dict[str, Instrument]:
        asked.clear()
        async with aiohttp.ClientSession() as http:
            return {i.native_symbol: i for i in await dialect.fetch_instruments(http, url)}

    try:
        got = await fetch()
        assert asked == ["btcusd", "ethusd", "ltcusd"] and sorted(got) == ["BTCUSD", "ETHUSD", "LTCUSD"]
        details["ltcusd"]["quote_increment"] = 0.05  # a known symbol changes its tick size
        got = await fetch()
        assert asked == ["btcusd"] and sorted(got) == ["BTCUSD", "ETHUSD", "LTCUSD"]
        assert got["LTCUSD"].tick_size == 0.01  # not re-read yet: the last answer holds
        listing[:] = ["btcusd", "solusd", "ltcusd"]  # ethusd delisted, solusd listed
        got = await fetch()
        assert asked == ["solusd", "ltcusd"], "the new symbol first, then the longest unread"
        assert sorted(got) == ["BTCUSD", "LTCUSD", "SOLUSD"] and got["LTCUSD"].tick_size == 0.05
        got = await fetch()
        assert asked == ["btcusd"]
    finally:
        await runner.cleanup()


# -- crypto-com -----------------------------------------------------------------------------------------

CDC_DOCUMENTED = {
    "id": "1",
    "method": "public/get-instruments",
    "code": "0",
    "result": {
        "data": [
            {
                "symbol": "BTCUSD-PERP",
                "inst_type": "PERPETUAL_SWAP",
                "display_name": "BTCUSD Perpetual",
                "base_ccy": "BTC",
                "quote_ccy": "USD",
                "quote_decimals": "2",
                "quantity_decimals": "4",
                "price_tick_size": "0.5",
                "qty_tick_size": "0.0001",
                "max_leverage": "50",
                "tradable": True,
                "expiry_timestamp_ms": "1624012801123",
                "underlying_symbol": "BTCUSD-INDEX",
                "product_type": "DIGITAL_CURRENCIES",
            }
        ]
    },
}
CDC_PAIR = {
    "symbol": "ZRX_USDT", "base_ccy": "ZRX", "quote_ccy": "USDT", "inst_type": "CCY_PAIR",
    "display_name": "ZRX/USDT", "quote_decimals": 5, "quantity_decimals": 0, "price_tick_size": "0.00001",
    "qty_tick_size": "1", "max_leverage": "50", "tradable": True, "expiry_timestamp_ms": 0,
    "underlying_symbol": None,
}  # fmt: skip


def test_crypto_com_documented_get_instruments() -> None:
    dialect = get_dialect("crypto-com")
    (perp,) = dialect.parse_instruments(orjson.dumps(CDC_DOCUMENTED), TS)
    # the example's expiry on a perpetual is not an expiry
    assert perp == Instrument(
        "crypto-com", "BTC-USD-PERP", "BTCUSD-PERP", "perpetual", "BTC", "USD", "USD", 0.5, 0.0001, 1.0, None,
        None, None, "trading", TS,
    )  # fmt: skip
    items = [
        *CDC_DOCUMENTED["result"]["data"],  # type: ignore[index]
        CDC_PAIR,
        {**CDC_PAIR, "symbol": "BTCUSD-251226", "inst_type": "FUTURE", "base_ccy": "BTC", "quote_ccy": "USD",
         "price_tick_size": "1", "qty_tick_size": "0.0001", "expiry_timestamp_ms": 1766736000000,
         "contract_size": "0.01", "tradable": False},
        {**CDC_PAIR, "symbol": "MLB-00015-260724-M", "inst_type": "EVENT"},
        {**CDC_PAIR, "symbol": "BAD_USDT", "price_tick_size": "0"},
        {**CDC_PAIR, "symbol": "NAN_USDT", "qty_tick_size": "NaN"},
        {**CDC_PAIR, "symbol": "NOTICK_USDT", "price_tick_size": None},
        {**CDC_PAIR, "symbol": "NOBASE_USDT", "base_ccy": None},
        {**CDC_PAIR, "symbol": "BIG_USDT", "price_tick_size": "1e400"},
        {"symbol": "HALF_USDT", "inst_type": "CCY_PAIR"},
        "not an item",
    ]  # fmt: skip
    body = {"id": 1, "method": "public/get-instruments", "code": 0, "result": {"data": items}}
    got = by_native(dialect.parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"BTCUSD-PERP", "ZRX_USDT", "BTCUSD-251226"}
    assert got["ZRX_USDT"] == Instrument(
        "crypto-com", "ZRX-USDT", "ZRX_USDT", "spot", "ZRX", "USDT", None, 0.00001, 1.0, None, None, None, None,
        "trading", TS,
    )  # fmt: skip
    future = got["BTCUSD-251226"]
    assert (future.symbol, future.kind, future.expiry, future.contract_size, future.status, future.settle) == (
        "BTCUSD-251226", "future", 1766736000000 * MS, 0.01, "untradable", "USD",
    )  # fmt: skip


def test_crypto_com_hostile_and_retired_answers(samples: Path) -> None:
    dialect = get_dialect("crypto-com")
    for body in (
        b"{broken",
        b"[]",
        b'{"id":"1","method":"public/get-instruments","code":"42901","message":"TOO_MANY_REQUESTS"}',
        b'{"code":0,"result":{"data":{}}}',
        b'{"code":0}',
    ):
        with pytest.raises(ValueError):
            dialect.parse_instruments(body, TS)
    # the shared recording is of the retired v2 API (``result.instruments``): a clear error, not a guess
    ((url, ts, body),) = recorded(samples, "crypto-com")
    assert url.endswith("/v2/public/get-instruments")
    with pytest.raises(ValueError, match=r"result\.data"):
        dialect.parse_instruments(body, ts)


# -- bitfinex -------------------------------------------------------------------------------------------

BFX_TICKERS = [
    ["tBTCUSD", 97000, 12.5, 97001, 10.2, -120, -0.0012, 97000, 2400.5, 98000, 95000],
    ["tAAVE:USD", 123.45, 50, 123.46, 40, 1.2, 0.01, 123.44, 900, 130, 120],
    ["tBTCF0:USTF0", 96990, 3.1, 96995, 2.2, 10, 0.0001, 96992, 800, 97500, 96000],
    ["tNEWUSD", 0.51, 1000, 0.53, 900, 0, 0, None, 0, None, None],
    ["fUSD", 0.0002, 0.0001, 2, 100, 0.0002, 30, 200, 0, 0, 0.0002, 1000, 0.0003, 0.0001, None, None, 5e6],
]
BFX_PAIRS = [
    [
        ["BTCUSD", [None, None, None, "0.00004", "2000.0", None, None, None, 0.2, 0.1]],
        ["AAVE:USD", [None, None, None, "0.06", "10000.0", None, None, None, 0.3, 0.15]],
        ["NEWUSD", [None, None, None, "10", "1000000.0", None, None, None, None, None]],
        ["NOPRICEUSD", [None, None, None, "1", "100.0", None, None, None, None, None]],
        ["BADUSD", "not a list"],
        [None, []],
    ]
]
BFX_FUTURES = [[["BTCF0:USTF0", [None, None, None, "0.0002", "100.0", None, None, None, 0.01, 0.005]]]]


def test_bitfinex_pairs_with_ticks_at_the_last_prices() -> None:
    """Tickers first (the fetch's order), then the exchange and derivative pair configurations."""
    dialect = get_dialect("bitfinex")
    assert dialect.instruments_paths() == [
        "/v2/tickers?symbols=ALL",
        "/v2/conf/pub:info:pair",
        "/v2/conf/pub:info:pair:futures",
    ]
    assert dialect.parse_instruments(orjson.dumps(BFX_TICKERS), TS) == []
    spot = by_native(dialect.parse_instruments(orjson.dumps(BFX_PAIRS), TS))
    # a pair without a price (no ticker) and malformed items are left out
    assert set(spot) == {"tBTCUSD", "tAAVE:USD", "tNEWUSD"}
    assert spot["tBTCUSD"] == Instrument(
        "bitfinex", "BTC-USD", "tBTCUSD", "spot", "BTC", "USD", None, 1.0, 1e-8, None, None, None, None, "trading", TS
    )  # fmt: skip
    assert spot["tAAVE:USD"].tick_size == 0.01  # 123.44: five significant digits
    assert spot["tNEWUSD"].tick_size == 1e-5  # no trade yet: the bid/ask mid 0.52
    (perp,) = dialect.parse_instruments(orjson.dumps(BFX_FUTURES), TS)
    assert perp == Instrument(
        "bitfinex", "BTC-USDT-PERP", "tBTCF0:USTF0", "perpetual", "BTC", "USDT", "USDT", 1.0, 1e-8, 1.0, None,
        None, None, "trading", TS,
    )  # fmt: skip
    # every price the venue can quote at that level is a whole multiple of the tick
    for price, tick in ((97_001.0, 1.0), (99_999.0, 1.0), (100_010.0, 10.0), (0.000012345, 1e-9)):
        assert significant_increment(price, 5) == tick
    for body in (b"not json", b'["error", 10020, "limit: invalid"]', b'{"a": 1}', b"[[1], [2]]"):
        with pytest.raises(ValueError):
            dialect.parse_instruments(body, TS)


def test_bitfinex_every_recorded_pair_name(samples: Path) -> None:
    """The 2021 recording lists the exchange and derivative pairs (``pub:list``): every name, put into
    the documented ``pub:info`` layout with a price, is an instrument named as the websocket rows are."""
    dialect = get_dialect("bitfinex")
    lists = {url.rsplit(":", 1)[-1]: orjson.loads(body)[0] for url, _ts, body in recorded(samples, "bitfinex")
             if "pub:list:pair" in url}  # fmt: skip
    names = lists["exchange"] + lists["future"]
    assert len(lists["exchange"]) == 293 and len(lists["future"]) == 35
    tickers = [["t" + n, 1.0, 1.0, 1.1, 1.0, 0, 0, 1.05, 1.0, 1.1, 1.0] for n in names]
    dialect.parse_instruments(orjson.dumps(tickers), TS)
    info = [[[n, [None, None, None, "1", "10", None, None, None, None, None]] for n in lists["exchange"]]]
    spot = dialect.parse_instruments(orjson.dumps(info), TS)
    futures = [[[n, [None, None, None, "1", "10", None, None, None, 0.01, 0.005]] for n in lists["future"]]]
    perps = dialect.parse_instruments(orjson.dumps(futures), TS)
    assert len(spot) == 293 and len(perps) == 35
    assert {i.kind for i in spot} == {"spot"} and {i.kind for i in perps} == {"perpetual"}
    assert all(
        i.symbol == dialect.normalise_symbol(i.native_symbol) and i.tick_size == 0.0001 for i in spot + perps
    )


# -- upbit ----------------------------------------------------------------------------------------------


def test_upbit_recorded_market_list_and_documented_ticks(samples: Path) -> None:
    dialect = get_dialect("upbit")
    ((url, _ts, body),) = recorded(samples, "upbit")
    assert url.endswith("/v1/market/all")
    codes = upbit_instruments.parse_markets(dialect, body)
    assert len(codes) == len(orjson.loads(body)) == 294 and codes[0] == "KRW-BTC"
    paths = upbit_instruments.ticks_paths(codes)
    assert len(paths) == 3 and paths[0].startswith("/v1/orderbook/instruments?markets=KRW-BTC,KRW-ETH,")
    assert sum(p.count(",") + 1 for p in paths) == 294
    ticks = [
        {"market": "KRW-BTC", "quote_currency": "KRW", "tick_size": "1000",
         "supported_levels": ["0", "10000", "100000", "1000000", "10000000", "100000000"]},
        {"market": "KRW-XRP", "quote_currency": "KRW", "tick_size": "1", "supported_levels": ["0", "10", "100"]},
        {"market": "BTC-ETH", "quote_currency": "BTC", "tick_size": "0.00000001", "supported_levels": ["0"]},
        {"market": "USDT-SOL", "quote_currency": "USDT", "tick_size": "0.01", "supported_levels": ["0"]},
        {"market": "KRW-BAD", "quote_currency": "KRW", "tick_size": "-1", "supported_levels": ["0"]},
        {"market": "KRW-MIX", "quote_currency": "BTC", "tick_size": "1", "supported_levels": ["0"]},
        {"market": "EUR-BTC", "quote_currency": "EUR", "tick_size": "1", "supported_levels": ["0"]},
        {"market": None, "quote_currency": "KRW", "tick_size": "1"},
    ]  # fmt: skip
    got = by_native(dialect.parse_instruments(orjson.dumps(ticks), TS))
    assert set(got) == {"KRW-BTC", "KRW-XRP", "BTC-ETH", "USDT-SOL"}
    assert got["KRW-BTC"] == Instrument(
        "upbit", "BTC-KRW", "KRW-BTC", "spot", "BTC", "KRW", None, 1000.0, 1e-8, None, None, None, None, "trading", TS
    )  # fmt: skip
    assert (got["BTC-ETH"].symbol, got["BTC-ETH"].tick_size) == ("ETH-BTC", 1e-8)
    for bad in (b"{oops", b'{"error":{"name":"too_many_requests","message":"x"}}', b"null"):
        with pytest.raises(ValueError):
            dialect.parse_instruments(bad, TS)
        with pytest.raises(ValueError):
            upbit_instruments.parse_markets(dialect, bad)
    # market list items the collector cannot name are left out
    assert upbit_instruments.parse_markets(
        dialect, b'[{"market":"KRW-BTC"},{"market":"EUR-BTC"},{"market":7},"x",{"market":"KRW-BTC"}]'
    ) == ["KRW-BTC"]


# -- every venue against its simulator ------------------------------------------------------------------

EXTRA = {
    "gemini": ("SOLUSD", "BTCGUSDPERP"),
    "crypto-com": ("BTC_USDT", "SOLUSD-PERP"),
    "bitfinex": ("tBTCUSD", "tAAVE:USD"),
    "upbit": ("BTC-ETH", "USDT-BTC"),
}


@pytest.mark.parametrize("exchange", sorted(EXTRA))
async def test_simulator_serves_the_venue_endpoints(exchange: str) -> None:
    """The simulator answers the venue's own instrument requests for its markets; the dialect reads
    them (tick from the model, except Bitfinex's significant-digit step at the model's price)."""
    dialect = get_dialect(exchange)
    natives = (*dialect.demo_symbols, *EXTRA[exchange])
    sim = dialect.simulator(SimulatorConfig(symbols=natives))
    await sim.start()
    try:
        async with aiohttp.ClientSession() as http:
            got = by_native(await dialect.fetch_instruments(http, sim.rest_url))
    finally:
        await sim.stop()
    assert sorted(got) == sorted(natives)
    for native, inst in got.items():
        model = sim.markets[native]
        assert inst.status == "trading" and inst.symbol == dialect.normalise_symbol(native)
        if exchange == "bitfinex":
            assert inst.tick_size == significant_increment(model.price_str(model.mid), 5)
        else:
            assert inst.tick_size == model.tick
        lot = 1e-8 if exchange in ("bitfinex", "upbit") else 10**-model.size_decimals
        assert inst.lot_size == pytest.approx(lot, rel=1e-12)
        assert (inst.kind == "perpetual") == native.upper().endswith(("PERP", "F0"))


@pytest.mark.parametrize(("exchange", "pattern"), [("gemini", "all"), ("crypto-com", "*-PERP"), ("bitfinex", "BTC-*"),
                                                   ("upbit", "*-KRW")])  # fmt: skip
async def test_all_and_globs_collect_through_the_simulator(exchange: str, pattern: str) -> None:
    """``all`` and globs resolve against the simulator's instruments; every match is collected, the
    instruments dataset holds every listed market, nothing else is subscribed."""
    dialect = get_dialect(exchange)
    natives = (*dialect.demo_symbols, *EXTRA[exchange])
    sim = dialect.simulator(SimulatorConfig(symbols=natives, rate_hz=5.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(dialect, [pattern], sink, ws_url=sim.ws_url, rest_url=sim.rest_url,
                          settings=dataclasses.replace(FAST, instruments_refresh_s=0))  # fmt: skip
    expected = {
        ("gemini", "all"): set(natives),
        ("crypto-com", "*-PERP"): {"BTCUSD-PERP", "ETHUSD-PERP", "SOLUSD-PERP"},
        ("bitfinex", "BTC-*"): {"tBTCUSD", "tBTCF0:USTF0"},
        ("upbit", "*-KRW"): {"KRW-BTC", "KRW-ETH"},
    }[(exchange, pattern)]
    try:
        await collector.start()
        assert sorted(collector.symbols) == sorted(expected)
        await collector.wait_connected(20)
        names = {dialect.normalise_symbol(n) for n in expected}
        deadline = time.monotonic() + 20
        while {r[1] for r in got.book} != names:
            assert time.monotonic() < deadline, f"book rows of {names - {r[1] for r in got.book}} missing"
            await asyncio.sleep(0.05)
    finally:
        await collector.stop()
        await sim.stop()
    assert sorted(r[2] for r in got.instruments) == sorted(natives)
    assert not [e for e in got.feed_events if e[4] == "instruments_error"]
