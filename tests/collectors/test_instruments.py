"""Instruments and symbol discovery: venue parsers on real and documented bodies, and the collector's
``all``/glob resolution, listings and delistings, unknown symbols and endpoint failures against the
simulators over real websockets and REST.

Documented bodies below follow each venue's documentation example (URLs in the parser modules'
docstrings, checked 2026-12-05), trimmed to the fields that matter plus a few the parser must ignore.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from collectors.backoff import RestBudget
from collectors.base import ExchangeDialect
from collectors.connection import Collector
from collectors.instruments import (
    Instrument,
    InstrumentBook,
    UnknownSymbolError,
    resolve_symbols,
    round_to_increment,
)
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from schemas import RecordBuffer
from tests.collectors.test_connection import FAST

TS = 1_700_000_000_000_000_000
MS = 1_000_000


def by_native(instruments: list[Instrument]) -> dict[str, Instrument]:
    return {i.native_symbol: i for i in instruments}


# -- parsers on real recordings ----------------------------------------------------------------------


def recorded_bodies(samples: Path, venue: str, url_part: str) -> list[tuple[str, int, str]]:
    """(url, ts_ns, body) of the recorded REST answers whose URL contains ``url_part``."""
    out = []
    with gzip.open(samples / venue / f"{venue}_cryptofeed.requests.jsonl.gz", "rt") as fh:
        for line in fh:
            rest = json.loads(line).get("rest")
            if rest and url_part in rest["url"]:
                out.append((rest["url"], rest["ts_ns"], rest["body"]))
    return out


def test_deribit_parser_on_the_recorded_get_instruments(samples: Path) -> None:
    """cryptofeed's 2021 answers (per currency; we ask ``currency=any``, the same item shape)."""
    dialect = get_dialect("deribit")
    bodies = recorded_bodies(samples, "deribit", "public/get_instruments")
    assert len(bodies) == 4
    parsed: dict[str, Instrument] = {}
    raw: dict[str, dict[str, object]] = {}
    for _url, ts, body in bodies:
        items = orjson.loads(body)["result"]
        got = dialect.parse_instruments(body, ts)
        # every non-combo instrument is parsed, none dropped
        assert len(got) == sum(1 for i in items if i["kind"] in ("future", "option", "spot")) > 0
        parsed.update(by_native(got))
        raw.update({i["instrument_name"]: i for i in items})
    assert len(parsed) > 500
    put = parsed["BTC-24SEP21-40000-P"]
    assert put == Instrument(
        "deribit",
        "BTC-24SEP21-40000-P",
        "BTC-24SEP21-40000-P",
        "option",
        "BTC",
        "BTC",
        "BTC",
        0.0005,
        0.1,
        1.0,
        1632470400000 * MS,
        40000.0,
        "put",
        "trading",
        put.ts_recv,
    )
    perp = parsed["BTC-PERPETUAL"]
    assert (perp.symbol, perp.kind, perp.expiry, perp.strike, perp.option_type) == (
        "BTC-USD-PERP",
        "perpetual",
        None,
        None,
        None,
    )
    assert perp.contract_size == raw["BTC-PERPETUAL"]["contract_size"] == 10
    assert perp.lot_size == raw["BTC-PERPETUAL"]["min_trade_amount"]
    usdc = parsed["UNI_USDC-PERPETUAL"]
    assert (usdc.symbol, usdc.settle, usdc.quote, usdc.tick_size) == ("UNI-USDC-PERP", "USDC", "USDC", 0.001)
    # every field equals the message, for every instrument
    for native, inst in parsed.items():
        item = raw[native]
        assert inst.tick_size == item["tick_size"] and inst.lot_size == item["min_trade_amount"]
        if inst.kind in ("future", "option"):
            assert inst.expiry == item["expiration_timestamp"] * MS
        if inst.kind == "option":
            assert (inst.strike, inst.option_type) == (item["strike"], item["option_type"])


@pytest.mark.parametrize(
    ("venue", "url_part", "items_of", "native_of", "tick_of", "lot_of"),
    [
        (
            "bitstamp",
            "trading-pairs-info",
            lambda b: b,
            lambda i: i["url_symbol"],
            lambda i: 10.0 ** -i["counter_decimals"],
            lambda i: 10.0 ** -i["base_decimals"],
        ),
        (
            "kucoin",
            "/api/v1/symbols",
            lambda b: b["data"],
            lambda i: i["symbol"],
            lambda i: float(i["priceIncrement"]),
            lambda i: float(i["baseIncrement"]),
        ),
        (
            "htx",
            "/v1/common/symbols",
            lambda b: b["data"],
            lambda i: i["symbol"],
            lambda i: 10.0 ** -i["price-precision"],
            lambda i: 10.0 ** -i["amount-precision"],
        ),
        (
            "gate",
            "/spot/currency_pairs",
            lambda b: b,
            lambda i: i["id"],
            lambda i: 10.0 ** -i["precision"],
            lambda i: 10.0 ** -i["amount_precision"],
        ),
    ],
)
def test_spot_parsers_on_recorded_lists(
    samples: Path, venue, url_part, items_of, native_of, tick_of, lot_of
) -> None:  # type: ignore[no-untyped-def]
    """Every instrument of the recorded list, tick and lot equal to the message's (decimals as floats)."""
    dialect = get_dialect(venue)
    ((_url, ts, body),) = recorded_bodies(samples, venue, url_part)
    items = items_of(orjson.loads(body))
    got = by_native(dialect.parse_instruments(body, ts))
    assert len(got) == len(items) > 100
    for item in items:
        inst = got[native_of(item)]
        assert inst.tick_size == pytest.approx(tick_of(item), rel=1e-12)
        assert inst.lot_size == pytest.approx(lot_of(item), rel=1e-12)
        assert (inst.kind, inst.settle, inst.contract_size, inst.expiry, inst.ts_recv) == (
            "spot",
            None,
            None,
            None,
            ts,
        )
        assert inst.symbol == dialect.normalise_symbol(inst.native_symbol)
    statuses = {i.status for i in got.values()}
    assert "trading" in statuses


def test_gate_futures_parser_on_the_recorded_contracts(samples: Path) -> None:
    """Every USDT contract of the 2023 list: tick ``order_price_round``, contract size
    ``quanto_multiplier`` (base units per contract), whole contracts, delisting status."""
    dialect = get_dialect("gate-futures")
    ((_url, ts, body),) = recorded_bodies(samples, "gate-futures", "/futures/usdt/contracts")
    items = orjson.loads(body)
    got = by_native(dialect.parse_instruments(body, ts))
    assert len(got) == len(items) > 100
    for item in items:
        inst = got[item["name"]]
        assert (inst.kind, inst.settle, inst.lot_size, inst.expiry) == ("perpetual", "USDT", 1.0, None)
        assert inst.tick_size == float(item["order_price_round"])
        assert inst.contract_size == float(item["quanto_multiplier"])
        assert inst.status == ("delisting" if item["in_delisting"] else "trading")
        assert inst.symbol == dialect.normalise_symbol(item["name"]) and inst.symbol.endswith("-PERP")


# -- parsers on documented bodies ----------------------------------------------------------------------


def test_binance_spot_exchange_info() -> None:
    body = {
        "timezone": "UTC",
        "serverTime": 1565246363776,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [
            {
                "symbol": "ETHBTC",
                "status": "TRADING",
                "baseAsset": "ETH",
                "baseAssetPrecision": 8,
                "quoteAsset": "BTC",
                "quotePrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.00001000",
                        "maxPrice": "922327.00000000",
                        "tickSize": "0.00001000",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": "0.00010000",
                        "maxQty": "100000.0",
                        "stepSize": "0.00010000",
                    },
                    {"filterType": "MIN_NOTIONAL", "minNotional": "0.00100000"},
                ],
                "permissions": ["SPOT", "MARGIN"],
            },
            {"symbol": "BADUSDT", "status": "BREAK", "baseAsset": "BAD", "quoteAsset": "USDT", "filters": []},
            {
                "symbol": "BNBUSDT",
                "status": "BREAK",
                "baseAsset": "BNB",
                "quoteAsset": "USDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.01000000"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.00100000"},
                ],
            },
        ],
    }
    got = by_native(get_dialect("binance").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"ETHBTC", "BNBUSDT"}  # BADUSDT has no filters: left out, the others kept
    assert got["ETHBTC"] == Instrument(
        "binance",
        "ETH-BTC",
        "ETHBTC",
        "spot",
        "ETH",
        "BTC",
        None,
        0.00001,
        0.0001,
        None,
        None,
        None,
        None,
        "trading",
        TS,
    )
    assert got["BNBUSDT"].status == "break" and not got["BNBUSDT"].trading


def test_binance_usdm_and_coinm_exchange_info() -> None:
    filters = [
        {"filterType": "PRICE_FILTER", "maxPrice": "300", "minPrice": "0.0001", "tickSize": "0.0001"},
        {"filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": "1", "stepSize": "1"},
    ]
    usdm = {
        "symbols": [
            {
                "symbol": "BLZUSDT",
                "pair": "BLZUSDT",
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1598252400000,
                "status": "TRADING",
                "baseAsset": "BLZ",
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
                "filters": filters,
            },
            {
                "symbol": "BTCUSDT_250926",
                "pair": "BTCUSDT",
                "contractType": "CURRENT_QUARTER",
                "deliveryDate": 1758873600000,
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.1"},
                    {"filterType": "LOT_SIZE", "stepSize": "0.001"},
                ],
            },
        ]
    }
    got = by_native(get_dialect("binance-futures").parse_instruments(orjson.dumps(usdm), TS))
    assert got["BLZUSDT"] == Instrument(
        "binance-futures",
        "BLZ-USDT-PERP",
        "BLZUSDT",
        "perpetual",
        "BLZ",
        "USDT",
        "USDT",
        0.0001,
        1.0,
        1.0,
        None,
        None,
        None,
        "trading",
        TS,
    )
    quarter = got["BTCUSDT_250926"]
    assert (quarter.kind, quarter.expiry, quarter.tick_size, quarter.lot_size) == (
        "future",
        1758873600000 * MS,
        0.1,
        0.001,
    )
    coinm = {
        "symbols": [
            {
                "symbol": "BTCUSD_200925",
                "pair": "BTCUSD",
                "contractType": "CURRENT_QUARTER",
                "deliveryDate": 1601020800000,
                "contractStatus": "TRADING",
                "contractSize": 100,
                "marginAsset": "BTC",
                "baseAsset": "BTC",
                "quoteAsset": "USD",
                "filters": [
                    {"filterType": "PRICE_FILTER", "tickSize": "0.1"},
                    {"filterType": "LOT_SIZE", "stepSize": "1"},
                ],
            }
        ]
    }
    (dated,) = get_dialect("binance-delivery").parse_instruments(orjson.dumps(coinm), TS)
    assert (dated.kind, dated.settle, dated.contract_size, dated.lot_size, dated.expiry, dated.status) == (
        "future",
        "BTC",
        100.0,
        1.0,
        1601020800000 * MS,
        "trading",
    )


def test_bybit_linear_and_spot_instruments_info() -> None:
    linear = {
        "retCode": 0,
        "retMsg": "OK",
        "result": {
            "category": "linear",
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDT",
                    "launchTime": "1585526400000",
                    "deliveryTime": "0",
                    "priceScale": "2",
                    "priceFilter": {"minPrice": "0.10", "maxPrice": "199999.80", "tickSize": "0.10"},
                    "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001"},
                    "settleCoin": "USDT",
                    "fundingInterval": 480,
                },
                {
                    "symbol": "BTC-26DEC25",
                    "contractType": "LinearFutures",
                    "status": "Trading",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDC",
                    "deliveryTime": "1766736000000",
                    "priceFilter": {"tickSize": "0.50"},
                    "lotSizeFilter": {"qtyStep": "0.001"},
                    "settleCoin": "USDC",
                },
            ],
            "nextPageCursor": "",
        },
        "time": 1735809771618,
    }
    got = by_native(get_dialect("bybit").parse_instruments(orjson.dumps(linear), TS))
    assert got["BTCUSDT"] == Instrument(
        "bybit", "BTC-USDT-PERP", "BTCUSDT", "perpetual", "BTC", "USDT", "USDT", 0.1, 0.001, 1.0, None, None, None,
        "trading", TS,
    )  # fmt: skip
    assert (got["BTC-26DEC25"].kind, got["BTC-26DEC25"].expiry) == ("future", 1766736000000 * MS)
    spot = {
        "retCode": 0,
        "result": {
            "category": "spot",
            "list": [
                {
                    "symbol": "BTCUSDT",
                    "baseCoin": "BTC",
                    "quoteCoin": "USDT",
                    "status": "Trading",
                    "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001"},
                    "priceFilter": {"tickSize": "0.01"},
                }
            ],
            "nextPageCursor": "",
        },
    }
    (btc,) = get_dialect("bybit-spot").parse_instruments(orjson.dumps(spot), TS)
    assert (btc.symbol, btc.kind, btc.tick_size, btc.lot_size, btc.contract_size) == (
        "BTC-USDT",
        "spot",
        0.01,
        0.000001,
        None,
    )
    with pytest.raises(ValueError, match="retCode 10001"):
        get_dialect("bybit").parse_instruments(b'{"retCode":10001,"retMsg":"params error","result":{}}', TS)


def test_okx_spot_swap_futures() -> None:
    body = {
        "code": "0",
        "msg": "",
        "data": [
            {
                "instType": "SPOT", "instId": "BTC-USDT", "uly": "", "instFamily": "", "baseCcy": "BTC",
                "quoteCcy": "USDT", "settleCcy": "", "ctVal": "", "ctMult": "", "ctValCcy": "", "optType": "",
                "stk": "", "listTime": "1606468572000", "expTime": "", "tickSz": "0.1", "lotSz": "0.00000001",
                "minSz": "0.00001", "ctType": "", "state": "live",
            },
            {
                "instType": "SWAP", "instId": "BTC-USD-SWAP", "uly": "BTC-USD", "instFamily": "BTC-USD",
                "baseCcy": "", "quoteCcy": "", "settleCcy": "BTC", "ctVal": "100", "ctMult": "1",
                "ctValCcy": "USD", "ctType": "inverse", "tickSz": "0.1", "lotSz": "1", "minSz": "1",
                "expTime": "", "state": "live",
            },
            {
                "instType": "FUTURES", "instId": "BTC-USDT-250926", "uly": "BTC-USDT", "instFamily": "BTC-USDT",
                "settleCcy": "USDT", "ctVal": "0.01", "ctMult": "1", "ctValCcy": "BTC", "ctType": "linear",
                "alias": "quarter", "tickSz": "0.1", "lotSz": "0.1", "minSz": "0.1",
                "expTime": "1758873600000", "state": "suspend",
            },
        ],
    }  # fmt: skip
    got = by_native(get_dialect("okx").parse_instruments(orjson.dumps(body), TS))
    assert got["BTC-USDT"] == Instrument(
        "okx",
        "BTC-USDT",
        "BTC-USDT",
        "spot",
        "BTC",
        "USDT",
        None,
        0.1,
        1e-8,
        None,
        None,
        None,
        None,
        "trading",
        TS,
    )
    swap = got["BTC-USD-SWAP"]
    assert (
        swap.symbol,
        swap.kind,
        swap.base,
        swap.quote,
        swap.settle,
        swap.contract_size,
        swap.lot_size,
    ) == (
        "BTC-USD-PERP",
        "perpetual",
        "BTC",
        "USD",
        "BTC",
        100.0,
        1.0,
    )
    fut = got["BTC-USDT-250926"]
    assert (fut.kind, fut.contract_size, fut.expiry, fut.status) == (
        "future",
        0.01,
        1758873600000 * MS,
        "suspend",
    )
    with pytest.raises(ValueError, match="code 51000"):
        get_dialect("okx").parse_instruments(
            b'{"code":"51000","msg":"Parameter instType error","data":[]}', TS
        )


def test_coinbase_public_products() -> None:
    body = {
        "products": [
            {
                "product_id": "BTC-USD",
                "price": "97000.01",
                "base_increment": "0.00000001",
                "quote_increment": "0.01",
                "price_increment": "0.01",
                "base_currency_id": "BTC",
                "quote_currency_id": "USD",
                "status": "online",
                "trading_disabled": False,
                "product_type": "SPOT",
            },
            {
                "product_id": "BTC-PERP-INTX",
                "base_increment": "0.0001",
                "quote_increment": "0.1",
                "price_increment": "0.1",
                "base_currency_id": "BTC",
                "quote_currency_id": "USDC",
                "status": "online",
                "trading_disabled": False,
                "product_type": "FUTURE",
                "future_product_details": {"contract_size": "1", "contract_expiry_type": "PERPETUAL"},
            },
            {
                "product_id": "OLD-USD",
                "base_increment": "0.1",
                "quote_increment": "0.001",
                "status": "delisted",
                "trading_disabled": True,
                "product_type": "SPOT",
            },
        ],
        "num_products": 3,
    }
    got = by_native(get_dialect("coinbase").parse_instruments(orjson.dumps(body), TS))
    assert got["BTC-USD"] == Instrument(
        "coinbase",
        "BTC-USD",
        "BTC-USD",
        "spot",
        "BTC",
        "USD",
        None,
        0.01,
        1e-8,
        None,
        None,
        None,
        None,
        "trading",
        TS,
    )
    perp = got["BTC-PERP-INTX"]
    assert (perp.symbol, perp.kind, perp.settle, perp.contract_size, perp.tick_size) == (
        "BTC-USDC-PERP",
        "perpetual",
        "USDC",
        1.0,
        0.1,
    )
    # no price_increment: the quote increment is the tick
    assert (got["OLD-USD"].tick_size, got["OLD-USD"].status) == (0.001, "delisted")


def test_kraken_asset_pairs() -> None:
    body = {
        "error": [],
        "result": {
            "XXBTZUSD": {
                "altname": "XBTUSD", "wsname": "XBT/USD", "aclass_base": "currency", "base": "XXBT",
                "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5,
                "pair_decimals": 1, "lot_decimals": 8, "lot_multiplier": 1, "ordermin": "0.0001",
                "costmin": "0.5", "tick_size": "0.1", "status": "online",
            },
            "XETHZEUR": {
                "altname": "ETHEUR", "wsname": "ETH/EUR", "base": "XETH", "quote": "ZEUR",
                "pair_decimals": 2, "lot_decimals": 8, "status": "cancel_only",
            },
            "XBTUSD.d": {"altname": "XBTUSD.d", "base": "XXBT", "quote": "ZUSD", "pair_decimals": 1},
        },
    }  # fmt: skip
    got = by_native(get_dialect("kraken").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"BTC/USD", "ETH/EUR"}  # the dark-pool pair has no wsname: not on the websocket
    assert got["BTC/USD"] == Instrument(
        "kraken",
        "BTC-USD",
        "BTC/USD",
        "spot",
        "BTC",
        "USD",
        None,
        0.1,
        1e-8,
        None,
        None,
        None,
        None,
        "trading",
        TS,
    )
    assert (got["ETH/EUR"].tick_size, got["ETH/EUR"].status) == (0.01, "cancel_only")


def test_hyperliquid_meta() -> None:
    """``POST /info {"type":"meta"}``: the documented example (perpetuals page). Tick is the decimals
    bound ``10**-(6 - szDecimals)`` (the finest step of any valid price), lot ``10**-szDecimals``."""
    body = {
        "universe": [
            {"name": "BTC", "szDecimals": 5, "maxLeverage": 50},
            {"name": "ETH", "szDecimals": 4, "maxLeverage": 50},
            {"name": "HPOS", "szDecimals": 0, "maxLeverage": 3, "onlyIsolated": True},
            {"name": "LOOM", "szDecimals": 1, "maxLeverage": 3, "onlyIsolated": True, "isDelisted": True},
            {"name": "BAD", "szDecimals": "many", "maxLeverage": 3},
        ],
        "marginTables": [[50, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 50}]}]],
    }  # fmt: skip
    got = by_native(get_dialect("hyperliquid").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"BTC", "ETH", "HPOS", "LOOM"}  # an unreadable item is left out, the rest stay
    assert got["BTC"] == Instrument(
        "hyperliquid", "BTC-USDC-PERP", "BTC", "perpetual", "BTC", "USDC", "USDC",
        0.1, 1e-5, 1.0, None, None, None, "trading", TS,
    )  # fmt: skip
    assert (got["ETH"].tick_size, got["ETH"].lot_size) == (0.01, 1e-4)
    assert (got["HPOS"].tick_size, got["HPOS"].lot_size) == (1e-6, 1.0)
    assert (got["LOOM"].tick_size, got["LOOM"].lot_size, got["LOOM"].status) == (1e-5, 0.1, "delisted")
    # the documented valid prices are whole multiples of the tick, invalid ones are not
    assert round_to_increment(0.001234, got["HPOS"].tick_size) == 0.001234
    assert round_to_increment(0.0012345, got["HPOS"].tick_size) != 0.0012345
    assert round_to_increment(0.01234, got["LOOM"].tick_size) == 0.01234
    assert round_to_increment(0.012345, got["LOOM"].tick_size) != 0.012345
    with pytest.raises(ValueError):
        get_dialect("hyperliquid").parse_instruments(b'{"universe": {}}', TS)


def test_bitmex_instrument_active() -> None:
    """``GET /api/v1/instrument/active``, items with the documented fields (values as BitMEX lists
    them for its inverse, linear, quanto, dated and spot contracts; an index is left out)."""
    common = {"isQuanto": False, "isInverse": False, "underlyingToSettleMultiplier": None}
    body = [
        {
            **common, "symbol": "XBTUSD", "rootSymbol": "XBT", "state": "Open", "typ": "FFWCSX",
            "listing": "2016-05-13T12:00:00.000Z", "expiry": None, "underlying": "XBT", "quoteCurrency": "USD",
            "settlCurrency": "XBt", "positionCurrency": "USD", "tickSize": 0.1, "lotSize": 100,
            "multiplier": -100000000, "isInverse": True, "underlyingToPositionMultiplier": None,
            "underlyingToSettleMultiplier": -100000000, "quoteToSettleMultiplier": None, "maxOrderQty": 10000000,
        },
        {
            **common, "symbol": "XBTUSDT", "state": "Open", "typ": "FFWCSX", "expiry": None, "underlying": "XBT",
            "quoteCurrency": "USDT", "settlCurrency": "USDt", "positionCurrency": "XBT", "tickSize": 0.5,
            "lotSize": 1000, "multiplier": 1, "underlyingToPositionMultiplier": 1000000,
            "quoteToSettleMultiplier": 1000000,
        },
        {
            **common, "symbol": "ETHUSD", "state": "Open", "typ": "FFWCSX", "expiry": None, "underlying": "ETH",
            "quoteCurrency": "USD", "settlCurrency": "XBt", "tickSize": 0.05, "lotSize": 1, "multiplier": 100,
            "isQuanto": True, "quoteToSettleMultiplier": None,
        },
        {
            **common, "symbol": "XBTH25", "state": "Open", "typ": "FFCCSX", "expiry": "2025-03-28T12:00:00.000Z",
            "underlying": "XBT", "quoteCurrency": "USD", "settlCurrency": "XBt", "tickSize": 0.5, "lotSize": 100,
            "multiplier": -100000000, "isInverse": True, "underlyingToSettleMultiplier": -100000000,
        },
        {
            **common, "symbol": "XBT_USDT", "state": "Open", "typ": "IFXXXP", "expiry": None, "underlying": "XBT",
            "quoteCurrency": "USDT", "settlCurrency": "USDt", "tickSize": 0.5, "lotSize": 1000, "multiplier": 1,
            "underlyingToPositionMultiplier": 1000000, "quoteToSettleMultiplier": 1000000,
        },
        {**common, "symbol": "SOLUSDT", "state": "Unlisted", "typ": "FFWCSX", "expiry": None, "underlying": "SOL",
         "quoteCurrency": "USDT", "settlCurrency": "USDt", "tickSize": 0.01, "lotSize": 1000, "multiplier": 1,
         "quoteToSettleMultiplier": 1000000},
        {"symbol": ".BXBT", "state": "Unlisted", "typ": "MRCXXX", "underlying": "XBT", "quoteCurrency": "USD",
         "tickSize": 0.01, "multiplier": 0},
        {**common, "symbol": "XRPUSDT", "state": "Open", "typ": "FFWCSX", "underlying": "XRP",
         "quoteCurrency": "USDT", "settlCurrency": "USDt", "tickSize": 0, "lotSize": 1000, "multiplier": 1},
    ]  # fmt: skip
    got = by_native(get_dialect("bitmex").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"XBTUSD", "XBTUSDT", "ETHUSD", "XBTH25", "XBT_USDT", "SOLUSDT"}  # no index, no tick 0
    assert got["XBTUSD"] == Instrument(
        "bitmex", "BTC-USD-PERP", "XBTUSD", "perpetual", "BTC", "USD", "BTC",
        0.1, 100.0, 1.0, None, None, None, "trading", TS,
    )  # fmt: skip
    assert got["XBTUSDT"] == Instrument(
        "bitmex", "BTC-USDT-PERP", "XBTUSDT", "perpetual", "BTC", "USDT", "USDT",
        0.5, 1000.0, 1e-6, None, None, None, "trading", TS,
    )  # fmt: skip
    assert (got["ETHUSD"].contract_size, got["ETHUSD"].settle, got["ETHUSD"].tick_size) == (None, "BTC", 0.05)
    future = got["XBTH25"]
    assert (future.kind, future.symbol, future.expiry, future.contract_size) == (
        "future", "XBTH25", 1743163200 * 10**9, 1.0,
    )  # fmt: skip
    spot = got["XBT_USDT"]
    assert (spot.kind, spot.settle, spot.contract_size, spot.lot_size) == ("spot", None, None, 1000.0)
    assert got["SOLUSDT"].status == "unlisted"
    with pytest.raises(ValueError):
        get_dialect("bitmex").parse_instruments(b'{"error": {"message": "Not Found"}}', TS)


def test_bitget_spot_symbols() -> None:
    """``GET /api/v2/spot/public/symbols``: the documented example plus a halted pair."""
    body = {
        "code": "00000", "msg": "success", "requestTime": 1744276707885,
        "data": [
            {
                "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "minTradeAmount": "0",
                "maxTradeAmount": "900000000000000000000", "takerFeeRate": "0.002", "makerFeeRate": "0.002",
                "pricePrecision": "2", "quantityPrecision": "6", "quotePrecision": "8", "status": "online",
                "minTradeUSDT": "1", "buyLimitPriceRatio": "0.05", "sellLimitPriceRatio": "0.05",
                "areaSymbol": "no", "orderQuantity": "200", "openTime": "1532454360000", "offTime": "",
            },
            {"symbol": "XYZUSDT", "baseCoin": "XYZ", "quoteCoin": "USDT", "pricePrecision": "5",
             "quantityPrecision": "0", "status": "halt"},
            {"symbol": "BADUSDT", "baseCoin": "BAD", "quoteCoin": "USDT", "pricePrecision": "x",
             "quantityPrecision": "0", "status": "online"},
        ],
    }  # fmt: skip
    got = by_native(get_dialect("bitget").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"BTCUSDT", "XYZUSDT"}
    assert got["BTCUSDT"] == Instrument(
        "bitget", "BTC-USDT", "BTCUSDT", "spot", "BTC", "USDT", None,
        0.01, 1e-6, None, None, None, None, "trading", TS,
    )  # fmt: skip
    assert (got["XYZUSDT"].tick_size, got["XYZUSDT"].lot_size, got["XYZUSDT"].status) == (1e-5, 1.0, "halt")
    with pytest.raises(ValueError):
        get_dialect("bitget").parse_instruments(b'{"code": "40019", "msg": "error", "data": null}', TS)


def test_bitget_usdt_futures_contracts() -> None:
    """``GET /api/v2/mix/market/contracts?productType=USDT-FUTURES``: the documented perpetual, a
    tick of ``priceEndStep`` 5 at one decimal, and a delivery contract in maintenance."""
    perp = {
        "symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "buyLimitPriceRatio": "0.9",
        "sellLimitPriceRatio": "0.9", "feeRateUpRatio": "0.1", "makerFeeRate": "0.0004", "takerFeeRate": "0.0006",
        "openCostUpRatio": "0.1", "supportMarginCoins": ["USDT"], "minTradeNum": "0.01", "priceEndStep": "1",
        "volumePlace": "2", "pricePlace": "1", "sizeMultiplier": "0.01", "symbolType": "perpetual",
        "minTradeUSDT": "5", "maxSymbolOrderNum": "999999", "maxProductOrderNum": "999999", "maxPositionNum": "150",
        "symbolStatus": "normal", "offTime": "-1", "limitOpenTime": "-1", "deliveryTime": "",
        "deliveryStartTime": "", "launchTime": "", "fundInterval": "8", "minLever": "1", "maxLever": "125",
        "posLimit": "0.05", "maintainTime": "", "maxMarketOrderQty": "220", "maxOrderQty": "1200",
    }  # fmt: skip
    body = {
        "code": "00000", "msg": "success", "requestTime": 1695793701269,
        "data": [
            perp,
            {**perp, "symbol": "ETHUSDT", "baseCoin": "ETH", "pricePlace": "1", "priceEndStep": "5",
             "sizeMultiplier": "0.1", "symbolStatus": "limit_open"},
            {**perp, "symbol": "BTCUSDT0328", "symbolType": "delivery", "deliveryTime": "1743148800000",
             "symbolStatus": "maintain"},
        ],
    }  # fmt: skip
    got = by_native(get_dialect("bitget-futures").parse_instruments(orjson.dumps(body), TS))
    assert got["BTCUSDT"] == Instrument(
        "bitget-futures", "BTC-USDT-PERP", "BTCUSDT", "perpetual", "BTC", "USDT", "USDT",
        0.1, 0.01, 1.0, None, None, None, "trading", TS,
    )  # fmt: skip
    assert (got["ETHUSDT"].tick_size, got["ETHUSDT"].lot_size, got["ETHUSDT"].status) == (
        0.5,
        0.1,
        "limit_open",
    )
    future = got["BTCUSDT0328"]
    assert (future.kind, future.expiry, future.status) == ("future", 1743148800000 * MS, "maintain")
    assert get_dialect("bitget-futures").instruments_paths() == [
        "/api/v2/mix/market/contracts?productType=USDT-FUTURES"
    ]


def test_kucoin_futures_contracts_active() -> None:
    """``GET /api/v1/contracts/active``: a linear perpetual (fields of the documented example), an
    inverse one (multiplier -1: one USD), a dated future and a paused contract."""
    linear = {
        "symbol": "XBTUSDTM", "rootSymbol": "USDT", "type": "FFWCSX", "firstOpenDate": 1585555200000,
        "expireDate": None, "settleDate": None, "baseCurrency": "XBT", "quoteCurrency": "USDT",
        "settleCurrency": "USDT", "maxOrderQty": 1000000, "maxPrice": 1000000.0, "lotSize": 1, "tickSize": 0.1,
        "indexPriceTickSize": 0.01, "multiplier": 0.001, "initialMargin": 0.008, "maintainMargin": 0.004,
        "maxRiskLimit": 100000, "minRiskLimit": 100000, "riskStep": 50000, "makerFeeRate": 0.0002,
        "takerFeeRate": 0.0006, "takerFixFee": 0.0, "makerFixFee": 0.0, "settlementFee": None,
        "isDeleverage": True, "isQuanto": True, "isInverse": False, "markMethod": "FairPrice",
        "fairMethod": "FundingRate", "fundingBaseSymbol": ".XBTINT8H", "fundingQuoteSymbol": ".USDTINT8H",
        "fundingRateSymbol": ".XBTUSDTMFPI8H", "indexSymbol": ".KXBTUSDT", "settlementSymbol": "",
        "status": "Open", "fundingFeeRate": 0.000153, "predictedFundingFeeRate": 0.000128,
    }  # fmt: skip
    body = {
        "code": "200000",
        "data": [
            linear,
            {**linear, "symbol": "XBTUSDM", "rootSymbol": "XBT", "quoteCurrency": "USD", "settleCurrency": "XBT",
             "multiplier": -1, "isInverse": True, "tickSize": 0.5},
            {**linear, "symbol": "XBTMZ25", "type": "FFICSX", "rootSymbol": "XBT", "quoteCurrency": "USD",
             "settleCurrency": "XBT", "multiplier": -1, "isInverse": True, "expireDate": 1766736000000},
            {**linear, "symbol": "ETHUSDTM", "baseCurrency": "ETH", "tickSize": 0.01, "multiplier": 0.01,
             "status": "Paused"},
            {**linear, "symbol": "NOPEUSDTM", "tickSize": -1},
        ],
    }  # fmt: skip
    got = by_native(get_dialect("kucoin-futures").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"XBTUSDTM", "XBTUSDM", "XBTMZ25", "ETHUSDTM"}
    assert got["XBTUSDTM"] == Instrument(
        "kucoin-futures", "BTC-USDT-PERP", "XBTUSDTM", "perpetual", "BTC", "USDT", "USDT",
        0.1, 1.0, 0.001, None, None, None, "trading", TS,
    )  # fmt: skip
    inverse = got["XBTUSDM"]
    assert (inverse.symbol, inverse.settle, inverse.contract_size, inverse.tick_size) == (
        "BTC-USD-PERP", "BTC", 1.0, 0.5,
    )  # fmt: skip
    assert (got["XBTMZ25"].kind, got["XBTMZ25"].expiry) == ("future", 1766736000000 * MS)
    assert (got["ETHUSDTM"].status, got["ETHUSDTM"].contract_size) == ("paused", 0.01)
    with pytest.raises(ValueError):
        get_dialect("kucoin-futures").parse_instruments(b'{"code": "400100", "msg": "error"}', TS)


def test_mexc_exchange_info() -> None:
    """``GET /api/v3/exchangeInfo``: the documented example (``METALUSDT``), a paused pair, the older
    ``ENABLED`` status, and one without precisions (left out)."""
    metal = {
        "symbol": "METALUSDT", "status": "1", "baseAsset": "METAL", "baseAssetPrecision": 2,
        "quoteAsset": "USDT", "quotePrecision": 5, "quoteAssetPrecision": 5, "baseCommissionPrecision": 2,
        "quoteCommissionPrecision": 5, "orderTypes": ["LIMIT", "MARKET", "LIMIT_MAKER"],
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False, "quoteAmountPrecision": "1",
        "baseSizePrecision": "0.1", "permissions": ["SPOT"],
        "filters": [{"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "askMultiplierDown": "0.2"}],
        "maxQuoteAmount": "2000000", "makerCommission": "0", "takerCommission": "0.0005",
        "quoteAmountPrecisionMarket": "1", "maxQuoteAmountMarket": "100000", "fullName": "Metal Blockchain",
        "tradeSideType": "1", "contractAddress": "xtokens", "st": False,
    }  # fmt: skip
    body = {
        "timezone": "CST", "serverTime": 1764900000000,
        "symbols": [
            metal,
            {**metal, "symbol": "BTCUSDT", "baseAsset": "BTC", "baseAssetPrecision": 6, "quotePrecision": 2,
             "status": "2"},
            {**metal, "symbol": "TOMO3LUSDT", "baseAsset": "TOMO3L", "quotePrecision": 3, "status": "ENABLED"},
            {"symbol": "NOPEUSDT", "status": "1", "baseAsset": "NOPE", "quoteAsset": "USDT"},
        ],
    }  # fmt: skip
    got = by_native(get_dialect("mexc").parse_instruments(orjson.dumps(body), TS))
    assert set(got) == {"METALUSDT", "BTCUSDT", "TOMO3LUSDT"}
    assert got["METALUSDT"] == Instrument(
        "mexc", "METAL-USDT", "METALUSDT", "spot", "METAL", "USDT", None,
        1e-5, 0.01, None, None, None, None, "trading", TS,
    )  # fmt: skip
    assert (got["BTCUSDT"].tick_size, got["BTCUSDT"].lot_size, got["BTCUSDT"].status) == (
        0.01,
        1e-6,
        "paused",
    )
    assert (got["TOMO3LUSDT"].tick_size, got["TOMO3LUSDT"].status) == (0.001, "trading")
    with pytest.raises(ValueError):
        get_dialect("mexc").parse_instruments(b'{"code": 700003, "msg": "error"}', TS)


# -- shared pieces ----------------------------------------------------------------------------------


def inst(native: str, symbol: str, status: str = "trading", tick: float = 0.01) -> Instrument:
    return Instrument("binance", symbol, native, "spot", symbol.split("-")[0], "USDT", None, tick, 0.001, None,
                      None, None, None, status, TS)  # fmt: skip


def test_resolution_globs_and_close_matches() -> None:
    dialect = get_dialect("binance")
    listed = [inst("BTCUSDT", "BTC-USDT"), inst("ETHUSDT", "ETH-USDT"), inst("BTCFDUSD", "BTC-FDUSD"),
              inst("OLDUSDT", "OLD-USDT", status="break")]  # fmt: skip
    assert resolve_symbols(dialect, ["all"], listed) == ["BTCUSDT", "ETHUSDT", "BTCFDUSD"]  # trading only
    assert resolve_symbols(dialect, ["BTC-*"], listed) == ["BTCUSDT", "BTCFDUSD"]  # normalised names
    assert resolve_symbols(dialect, ["*usdt"], listed) == ["BTCUSDT", "ETHUSDT"]  # native names
    # explicit names in any form, once each; a halted market can still be asked for by name
    assert resolve_symbols(dialect, ["eth-usdt", "ETHUSDT", "OLDUSDT", "BTC-*"], listed) == [
        "ETHUSDT",
        "OLDUSDT",
        "BTCUSDT",
        "BTCFDUSD",
    ]
    with pytest.raises(UnknownSymbolError) as err:
        resolve_symbols(dialect, ["BTC-USDTT", "ETHUSDT", "ZZZQQQ"], listed)
    assert err.value.missing == {"BTC-USDTT": ["BTC-USDT", "BTCUSDT", "BTC-FDUSD"], "ZZZQQQ": []}
    assert "did you mean BTC-USDT" in str(err.value)


def test_instrument_book_writes_changes_and_finds_listings() -> None:
    book = InstrumentBook()
    rows, listed, delisted = book.update([inst("BTCUSDT", "BTC-USDT"), inst("ETHUSDT", "ETH-USDT")], TS)
    assert [r.native_symbol for r in rows] == ["BTCUSDT", "ETHUSDT"] and listed == delisted == []
    # the same set again (a later receive time): nothing to write
    assert book.update([dataclasses.replace(i, ts_recv=TS + 1) for i in rows], TS + 1) == ([], [], [])
    # a tick change, a new listing, a halt and a disappearance
    rows, listed, delisted = book.update(
        [inst("BTCUSDT", "BTC-USDT", tick=0.1), inst("SOLUSDT", "SOL-USDT")], TS + 2
    )
    assert {(r.native_symbol, r.status, r.tick_size) for r in rows} == {
        ("BTCUSDT", "trading", 0.1),
        ("SOLUSDT", "trading", 0.01),
        ("ETHUSDT", "delisted", 0.01),
    }
    assert (listed, delisted) == (["SOLUSDT"], ["ETHUSDT"])
    # a delisted instrument is written once, not at every fetch
    assert book.update([inst("BTCUSDT", "BTC-USDT", tick=0.1), inst("SOLUSDT", "SOL-USDT")], TS + 3) == (
        [],
        [],
        [],
    )


def test_round_to_increment_is_exact() -> None:
    assert round_to_increment(65000.010000001, 0.01) == 65000.01
    assert round_to_increment(0.1 + 0.2, 0.1) == 0.3
    assert round_to_increment(1.23456789, 0.0001) == 1.2346
    assert round_to_increment(12.5, 5.0) == 10.0  # half to even: 2.5 lots -> 2
    assert round_to_increment(3 * 0.00001, 0.00001) == 0.00003
    with pytest.raises(ValueError):
        round_to_increment(1.0, 0.0)


# -- the collector against simulators -----------------------------------------------------------------

FOLLOW = dataclasses.replace(FAST, instruments_refresh_s=0.2)


async def until(predicate: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.05)


async def test_all_symbols_of_300_across_several_connections() -> None:
    """``--symbols all`` on a 300-market Bybit simulator: three pages of instruments (100 a page),
    every market captured, split within the venue's 200 topics per connection."""
    dialect = get_dialect("bybit")
    natives = tuple(f"C{i:03d}USDT" for i in range(300))
    sim = dialect.simulator(SimulatorConfig(symbols=natives, rate_hz=1.0))
    sim.instruments_page_size = 100  # type: ignore[attr-defined]
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    budget = RestBudget(weight_per_window=1000)
    collector = Collector(dialect, ["all"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST,
                          budget=budget)  # fmt: skip
    try:
        await collector.start()
        await collector.wait_connected(20)
        assert len(collector.symbols) == 300
        await until(lambda: len({r[1] for r in got.book if r[7]}) == 300)
    finally:
        await collector.stop()
        await sim.stop()
    assert sim.instrument_requests == 3  # three pages, one fetch
    assert budget.max_used == 3  # each page was counted against the REST budget
    per_conn = [len(c.subscription.symbols) for c in collector.connections]
    # several connections, each within the venue's topics per connection (every channel a topic or
    # two: trades, book, bbo, and the derivatives channels' tickers and allLiquidation)
    for conn in collector.connections:
        sub = conn.subscription
        topics = [t for native in sub.symbols for t in dialect.topics(native, sub.channels)]  # type: ignore[attr-defined]
        assert len(topics) <= dialect.max_streams_per_connection
    assert len(per_conn) >= 2 and sum(per_conn) == 300
    assert sorted(r[2] for r in got.instruments) == sorted(natives)
    assert {r[1] for r in got.book} == {f"C{i:03d}-USDT-PERP" for i in range(300)}
    assert {(r[3], r[6], r[7], r[8], r[9]) for r in got.instruments} == {
        ("perpetual", "USDT", 0.0001, 0.0001, 1.0)
    }


async def test_glob_listing_and_delisting_while_running() -> None:
    """``BTC-*`` and ``ETH*`` on Bybit spot: a new BTC market is subscribed on a new connection with a
    ``listing`` event; a delisted one is dropped (its connection replaced without it) with a
    ``delisting`` event and a ``delisted`` instruments row; unrelated listings are only evented."""
    dialect = get_dialect("bybit-spot")
    sim = dialect.simulator(
        SimulatorConfig(symbols=("BTCUSDT", "BTCUSDC", "ETHUSDT", "SOLUSDT"), rate_hz=5.0)
    )
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(dialect, ["BTC-*", "eth*"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url,
                          settings=FOLLOW)  # fmt: skip

    def events(kind: str) -> list[tuple[str | None, str]]:
        return [(e[1], e[2]) for e in got.feed_events if e[4] == kind]

    try:
        await collector.start()
        assert sorted(collector.symbols) == ["BTCUSDC", "BTCUSDT", "ETHUSDT"]
        await collector.wait_connected()
        sim.add_market("BTCEUR")
        sim.add_market("DOGEUSDT")
        await until(lambda: any(r[1] == "BTC-EUR" and r[7] for r in got.book))
        assert ("BTC-EUR", "instruments") in events("listing")
        assert ("DOGE-USDT", "instruments") in events("listing")  # evented, not subscribed
        assert "DOGEUSDT" not in collector.symbols and "BTCEUR" in collector.symbols
        assert collector.stats.listings_subscribed == 1
        sim.remove_market("BTCUSDC")
        await until(
            lambda: (
                ("BTC-USDC", "instruments") in events("delisting") and collector.stats.delistings_unsubscribed
            )
        )
        await until(lambda: all("BTCUSDC" not in c.subscription.symbols for c in collector.connections))
        btc_usdt_before = sum(1 for r in got.book if r[1] == "BTC-USDT")
        await until(lambda: sum(1 for r in got.book if r[1] == "BTC-USDT") > btc_usdt_before + 5)
    finally:
        await collector.stop()
        await sim.stop()
    assert "BTCUSDC" not in collector.symbols
    assert [r[13] for r in got.instruments if r[2] == "BTCUSDC"] == ["trading", "delisted"]
    assert [r[2] for r in got.instruments].count("BTCUSDT") == 1  # unchanged: written once


async def test_unknown_symbol_is_an_error_with_close_matches() -> None:
    dialect = get_dialect("okx")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTC-USDT", "ETH-USDT", "BTC-USDT-SWAP")))
    await sim.start()

    async def sink(batch: RecordBuffer) -> None:
        return None

    try:
        collector = Collector(dialect, ["BTC-USDT", "BTC-USTD-PERP"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url,
                              settings=FAST)  # fmt: skip
        with pytest.raises(UnknownSymbolError) as err:
            await collector.start()
        assert collector.connections == []
    finally:
        await sim.stop()
    assert list(err.value.missing) == ["BTC-USTD-PERP"]
    assert "BTC-USDT-PERP" in err.value.missing["BTC-USTD-PERP"]


async def test_instruments_endpoint_failure_keeps_explicit_symbols() -> None:
    """The instruments endpoint fails at start: the explicit symbols are collected anyway, the pattern
    waits, an ``instruments_error`` event says why; the next fetch resolves the pattern."""
    dialect = get_dialect("okx")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTC-USDT", "ETH-USDT", "ETH-USDT-SWAP"), rate_hz=5.0))
    sim.faults.instruments_errors = 1
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(dialect, ["BTC-USDT", "*-PERP"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url,
                          settings=dataclasses.replace(FAST, instruments_refresh_s=0.5))  # fmt: skip
    try:
        await collector.start()
        assert collector.symbols == ["BTC-USDT"]
        await until(lambda: any(r[1] == "BTC-USDT" for r in got.trades))
        errors = [e for e in got.feed_events if e[4] == "instruments_error"]
        assert len(errors) == 1 and "HTTP 503" in orjson.loads(errors[0][5])["reason"]
        await until(lambda: any(r[1] == "ETH-USDT-PERP" and r[7] for r in got.book))
    finally:
        await collector.stop()
        await sim.stop()
    assert collector.stats.instrument_errors == 1 and collector.stats.instrument_fetches >= 1
    assert sorted(collector.symbols) == ["BTC-USDT", "ETH-USDT-SWAP"]
    assert {r[2] for r in got.instruments} == {"BTC-USDT", "ETH-USDT", "ETH-USDT-SWAP"}


@pytest.mark.parametrize(
    "exchange",
    [
        "binance",
        "binance-futures",
        "binance-delivery",
        "bybit",
        "bybit-spot",
        "okx",
        "coinbase",
        "kraken",
        "deribit",
        "bitstamp",
        "kucoin",
        "gate",
        "gate-futures",
        "htx",
        "hyperliquid",
        "bitmex",
        "bitget",
        "bitget-futures",
        "kucoin-futures",
        "mexc",
    ],
)
async def test_every_simulator_serves_its_instruments(exchange: str) -> None:
    """Each venue's simulator answers the venue's own endpoint, and the dialect's parser reads it:
    tick from ``MarketModel.tick``, lot from its size decimals."""
    dialect = get_dialect(exchange)
    sim = dialect.simulator(SimulatorConfig(symbols=dialect.demo_symbols))
    await sim.start()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            got = await dialect.fetch_instruments(http, sim.rest_url)
    finally:
        await sim.stop()
    assert sorted(i.native_symbol for i in got) == sorted(dialect.demo_symbols)
    for i in got:
        model = sim.markets[i.native_symbol]
        lot = 10**-model.size_decimals
        if sim.sizes_in_lots:  # sizes are whole contracts of one model lot
            assert i.contract_size == pytest.approx(lot)
            lot = 1
        assert (i.tick_size, i.lot_size, i.status) == (model.tick, lot, "trading")
        assert i.symbol == dialect.normalise_symbol(i.native_symbol)


def test_lake_rounds_prices_and_sizes_with_the_instruments(tmp_path: Path) -> None:
    """``lake.rounded``: float64 noise in trades is removed with each symbol's tick and lot, taken from
    the instruments row in force (the latest before ``at``)."""
    import ticktape
    from tests.storage.lakegen import write_sink_file
    from ticktape.lake import LakeLookupError

    day = 1_764_979_200_000_000_000  # 2025-12-06T00:00:00Z
    write_sink_file(tmp_path, "instruments", [
        ("okx", "BTC-USDT", "BTC-USDT", "spot", "BTC", "USDT", None, 0.1, 1e-8, None, None, None, None, "trading", day),
        ("okx", "BTC-USDT", "BTC-USDT", "spot", "BTC", "USDT", None, 0.01, 1e-8, None, None, None, None, "trading",
         day + 3_600_000_000_000),
        ("okx", "ETH-USDT-PERP", "ETH-USDT-SWAP", "perpetual", "ETH", "USDT", "USDT", 0.0005, 0.1, 0.1, None, None,
         None, "trading", day),
    ], "instr", 0, 2)  # fmt: skip
    write_sink_file(tmp_path, "trades", [
        ("okx", "BTC-USDT", day + 1, day + 7_200_000_000_000, "1", 65000.010000001, 0.30000000000000004, "buy", 0),
        ("okx", "ETH-USDT-PERP", day + 2, day + 7_200_000_000_001, "2", 3200.00050001, 2 * 0.1 + 0.1, "sell", 0),
        ("okx", "ETH-USDT-PERP", day + 3, day + 7_200_000_000_002, "3", 0.1 + 0.2, 7.0, "sell", 0),
    ], "trd", 0, 2)  # fmt: skip
    with ticktape.open_lake(str(tmp_path)) as lake:
        trades = lake.trades().sort_by("ts_recv")
        assert trades.column("price").to_pylist()[0] != 65000.01  # the noise is really there
        rounded = lake.rounded(trades)
        assert rounded.column("price").to_pylist() == [65000.01, 3200.0005, 0.3]
        assert rounded.column("size").to_pylist() == [0.3, 0.3, 7.0]
        # the tick in force before the change was 0.1
        assert lake.rounded(trades, at=day + 60_000_000_000).column("price").to_pylist()[0] == 65000.0
        assert rounded.column("trade_id").to_pylist() == ["1", "2", "3"]  # other columns untouched
        unknown = trades.set_column(1, "symbol", pa.array(["SOL-USDT"] * 3))
        with pytest.raises(LakeLookupError, match="okx SOL-USDT"):
            lake.rounded(unknown)


def test_collect_command_names_close_matches_of_an_unknown_symbol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ticktape collect`` against a simulator (its own loop in a thread): exit 2, the close matches."""
    import threading

    from ticktape.cli import main

    dialect = get_dialect("okx")
    sim = dialect.simulator(SimulatorConfig(symbols=("BTC-USDT", "BTC-USDT-SWAP"), rate_hz=2.0))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        code = main(["collect", "--exchange", "okx", "--symbols", "BTC-USDT,BTC-USTD-PERP", "--ws-url", sim.ws_url,
                     "--rest-url", sim.rest_url, "--log", str(tmp_path / "log"), "--duration", "5"])  # fmt: skip
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    assert code == 2
    err = capsys.readouterr().err
    assert "okx does not list 'BTC-USTD-PERP' (did you mean BTC-USDT-PERP" in err


def slow_okx(release: asyncio.Event) -> ExchangeDialect:
    """OKX whose instruments fetch waits for ``release`` (a venue as slow as Gemini's, on demand)."""

    class SlowOkx(type(get_dialect("okx"))):  # type: ignore[misc]
        async def fetch_instruments(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            await release.wait()
            return await super().fetch_instruments(*args, **kwargs)

    return SlowOkx()  # type: ignore[no-any-return]


async def test_a_slow_instruments_fetch_does_not_hold_explicit_symbols() -> None:
    """Gemini's instruments take one request per symbol (minutes): with explicit symbols only, the start
    waits at most ``instruments_start_wait_s``, collects at once, and checks the names when the list
    arrives: a name the venue does not list is an ``unknown_symbol`` event with its close matches."""
    release = asyncio.Event()
    dialect = slow_okx(release)
    sim = dialect.simulator(SimulatorConfig(symbols=("BTC-USDT", "ETH-USDT"), rate_hz=20.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    settings = dataclasses.replace(FAST, instruments_start_wait_s=0.2, instruments_refresh_s=0)
    collector = Collector(dialect, ["BTC-USDT", "ETH-USTD"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url,
                          settings=settings)  # fmt: skip
    try:
        await asyncio.wait_for(collector.start(), 5)  # did not wait for the list
        await until(lambda: any(r[1] == "BTC-USDT" for r in got.trades))
        assert not got.instruments and not release.is_set()
        release.set()
        await until(lambda: any(e[4] == "unknown_symbol" for e in got.feed_events))
    finally:
        await collector.stop()
        await sim.stop()
    [event] = [e for e in got.feed_events if e[4] == "unknown_symbol"]
    detail = json.loads(event[5])
    assert detail["requested"] == "ETH-USTD" and "ETH-USDT" in detail["close_matches"]
    assert {r[2] for r in got.instruments} >= {"BTC-USDT", "ETH-USDT"}


async def test_patterns_wait_for_a_slow_instruments_fetch() -> None:
    """A pattern needs the list: the start waits for it however long it takes."""
    release = asyncio.Event()
    dialect = slow_okx(release)
    sim = dialect.simulator(SimulatorConfig(symbols=("BTC-USDT", "ETH-USDT"), rate_hz=20.0))
    await sim.start()

    async def sink(batch: RecordBuffer) -> None:
        return None

    settings = dataclasses.replace(FAST, instruments_start_wait_s=0.1, instruments_refresh_s=0)
    collector = Collector(
        dialect, ["BTC-*"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=settings
    )
    start = asyncio.create_task(collector.start())
    try:
        await asyncio.sleep(0.5)
        assert not start.done() and collector.connections == []
        release.set()
        await asyncio.wait_for(start, 10)
        assert collector.symbols == ["BTC-USDT"]
        # Stopped at once, while its connection may still be in its handshake: the socket opened then
        # is closed too (it used to run on until the 10 s stop timeout cancelled it).
        await asyncio.wait_for(collector.stop(), 5)
    finally:
        await sim.stop()
