"""Instruments of kraken-futures, coinbase-international, htx-swap and OKX options: the parsers on each
venue's documented answer (URLs in the parser modules' docstrings, checked 2026-12-05; trimmed to the
fields that matter plus a few the parser must ignore), hostile answers (a clear ValueError or the item
left out, never another exception), and the simulators over real REST and websockets (``all`` and globs
resolve against what they serve).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from collectors.connection import Collector
from collectors.instruments import Instrument, decimals_increment
from collectors.registry import get_dialect
from collectors.simulator import SimulatorConfig
from collectors.venues import okx_instruments
from schemas import RecordBuffer
from tests.collectors.test_connection import FAST
from tests.collectors.test_instruments import test_every_simulator_serves_its_instruments as serves
from tests.collectors.test_instruments import until

TS = 1_700_000_000_000_000_000
MS = 1_000_000


def parse(exchange: str, body: Any) -> dict[str, Instrument]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return {i.native_symbol: i for i in get_dialect(exchange).parse_instruments(raw, TS)}


# -- kraken-futures ------------------------------------------------------------------------------------


def test_kraken_futures_documented_instruments() -> None:
    """https://docs.kraken.com/api-reference/instrument-details/get-instruments: the documented
    ``PF_XBTUSD`` (labelled ``futures_inverse`` there, flexible by its prefix) and ``FI_XBTUSD_220930``,
    plus an inverse perpetual, a negative trade precision, an untradeable market, an index of older
    answers (left out) and unusable items (left out)."""
    margin = [{"contracts": 0, "initialMargin": 0.02, "maintenanceMargin": 0.01}]
    pf = {
        "symbol": "PF_XBTUSD", "pair": "XBT:USD", "base": "XBT", "quote": "USD", "type": "futures_inverse",
        "underlying": "rr_xbtusd", "tickSize": 0.5, "contractSize": 1, "tradeable": True, "impactMidSize": 1,
        "maxPositionSize": 1000000, "openingDate": "2022-01-01T00:00:00.000Z", "marginLevels": margin,
        "fundingRateCoefficient": 8, "maxRelativeFundingRate": 0.001, "isin": "GB00J62YGL67",
        "contractValueTradePrecision": 0, "postOnly": False, "feeScheduleUid": "eef90775-995b-4596-9257-0917f6134766",
        "retailMarginLevels": margin, "category": "", "tags": [], "tradfi": False, "mtf": True,
    }  # fmt: skip
    fi = {
        **pf, "symbol": "FI_XBTUSD_220930", "lastTradingTime": "2022-09-30T15:00:00.000Z",
    }  # fmt: skip
    body = {
        "result": "success",
        "instruments": [
            pf,
            fi,
            {**pf, "symbol": "PI_XBTUSD", "type": "futures_inverse", "contractSize": 1, "tickSize": 0.5},
            {**pf, "symbol": "PF_PEPEUSD", "pair": "PEPE:USD", "base": "PEPE", "type": "flexible_futures",
             "tickSize": 1e-9, "contractValueTradePrecision": -3},
            {**pf, "symbol": "PF_ETHUSD", "pair": "ETH:USD", "base": "ETH", "type": "flexible_futures",
             "tickSize": 0.1, "contractValueTradePrecision": 3, "tradeable": False},
            {"symbol": "rr_xbtusd", "type": "spot index", "tradeable": False},
            {**pf, "symbol": "PF_BADUSD", "tickSize": 0},
            {**pf, "symbol": "PF_NANUSD", "contractSize": "nan"},
            {**pf, "symbol": "PF_YESUSD", "tradeable": "yes"},
            {**pf, "symbol": "PF_BIGUSD", "contractValueTradePrecision": 400},
            {**pf, "symbol": "PF_HALFUSD", "contractValueTradePrecision": 2.5},
            {**pf, "symbol": "FI_XBTUSD_221230", "lastTradingTime": "not a time"},
            {**pf, "symbol": 42},
            "not an object",
        ],
        "serverTime": "2022-06-28T09:29:04.243Z",
    }  # fmt: skip
    got = parse("kraken-futures", body)
    assert set(got) == {"PF_XBTUSD", "FI_XBTUSD_220930", "PI_XBTUSD", "PF_PEPEUSD", "PF_ETHUSD"}
    assert got["PF_XBTUSD"] == Instrument(
        "kraken-futures", "BTC-USD-PERP", "PF_XBTUSD", "perpetual", "BTC", "USD", "USD",
        0.5, 1.0, 1.0, None, None, None, "trading", TS,
    )  # fmt: skip
    assert got["FI_XBTUSD_220930"] == Instrument(
        "kraken-futures", "FI_XBTUSD_220930", "FI_XBTUSD_220930", "future", "BTC", "USD", "BTC",
        0.5, 1.0, 1.0, 1664550000 * 10**9, None, None, "trading", TS,
    )  # fmt: skip
    inverse = got["PI_XBTUSD"]
    assert (inverse.symbol, inverse.kind, inverse.settle, inverse.contract_size) == (
        "PI_XBTUSD", "perpetual", "BTC", 1.0,
    )  # fmt: skip
    assert (got["PF_PEPEUSD"].lot_size, got["PF_PEPEUSD"].tick_size) == (1000.0, 1e-9)
    assert (got["PF_ETHUSD"].status, got["PF_ETHUSD"].lot_size, got["PF_ETHUSD"].symbol) == (
        "untradeable", 0.001, "ETH-USD-PERP",
    )  # fmt: skip
    with pytest.raises(ValueError, match="error apiLimitExceeded"):
        parse("kraken-futures", {"result": "error", "error": "apiLimitExceeded", "serverTime": "x"})


def test_kraken_futures_older_answer_without_base_quote_or_precision() -> None:
    """Older answers (as cryptofeed-era clients knew them) name neither ``base`` nor the precision:
    the pair comes from the symbol, the lot is a whole contract."""
    item = {
        "symbol": "pi_ethusd",
        "type": "futures_inverse",
        "tradeable": True,
        "tickSize": 0.05,
        "contractSize": 1,
    }
    got = parse("kraken-futures", {"result": "success", "instruments": [item]})
    assert got["PI_ETHUSD"] == Instrument(
        "kraken-futures", "PI_ETHUSD", "PI_ETHUSD", "perpetual", "ETH", "USD", "ETH",
        0.05, 1.0, 1.0, None, None, None, "trading", TS,
    )  # fmt: skip


# -- coinbase-international ---------------------------------------------------------------------------


def test_coinbase_international_documented_and_recorded_instruments() -> None:
    """The documented example of https://docs.cdp.coinbase.com/api-reference/international-exchange-api/rest-api/instruments/list-instruments
    (numbers as JSON numbers; its symbol is spot-styled, ``BTC-USDC``, for a ``PERP``) and a real
    ``BTC-PERP`` item as nautilus recorded it (numbers as strings), a spot pair, a paused market, an
    unknown type (left out) and unusable items (left out)."""
    documented = {
        "instrument_id": 22653087021498350, "instrument_uuid": "97645486-8058-4d98-aa1e-5ab2685d09c8",
        "symbol": "BTC-USDC", "type": "PERP", "mode": "STANDARD", "base_asset_id": 2919822098049565,
        "base_asset_name": "BTC", "quote_asset_id": 45922259775510770, "quote_asset_name": "USDC",
        "base_increment": 0.000001, "quote_increment": 0.01, "price_band_percent": 0.02,
        "market_order_percent": 0.015, "qty_24hr": 4318.12, "open_interest": 100, "position_limit_qty": "<string>",
        "base_imf": 0.1, "default_imf": 0.2, "min_notional_value": 10, "funding_interval": 36000000000,
        "trading_state": "TRADING", "quote": {"best_bid_price": 20000.5, "mark_price": 20000.63,
        "timestamp": "2023-11-07T05:31:56Z"}, "base_asset_multiplier": 1, "underlying_type": "SPOT",
        "rfq_maker_fee_rate": 0.01,
    }  # fmt: skip
    recorded = {
        "instrument_id": "149264167780483072", "symbol": "BTC-PERP", "type": "PERP", "mode": "STANDARD",
        "base_asset_name": "BTC", "quote_asset_name": "USDC", "base_increment": "0.0001", "quote_increment": "0.1",
        "open_interest": "899.6503", "funding_interval": "3600000000000", "trading_state": "TRADING",
        "default_imf": 0.2, "base_asset_multiplier": "1.0", "underlying_type": "SPOT",
    }  # fmt: skip
    body = [
        documented,
        recorded,
        {**recorded, "symbol": "ETH-USDC", "type": "SPOT", "base_asset_name": "ETH", "quote_increment": "0.01",
         "base_asset_multiplier": None},
        {**recorded, "symbol": "SOL-PERP", "base_asset_name": "SOL", "trading_state": "paused",
         "base_asset_multiplier": "10"},
        {**recorded, "symbol": "BTC-20DEC30", "type": "FUTURE"},
        {**recorded, "symbol": "ZERO-PERP", "base_increment": "0"},
        {**recorded, "symbol": "INF-PERP", "quote_increment": "inf"},
        {**recorded, "symbol": "NOSTATE-PERP", "trading_state": None},
        {**recorded, "symbol": "NOMULT-PERP", "base_asset_multiplier": "-1"},
        {**recorded, "symbol": None},
    ]  # fmt: skip
    got = parse("coinbase-international", body)
    assert set(got) == {"BTC-USDC", "BTC-PERP", "ETH-USDC", "SOL-PERP"}
    assert got["BTC-PERP"] == Instrument(
        "coinbase-international", "BTC-USDC-PERP", "BTC-PERP", "perpetual", "BTC", "USDC", "USDC",
        0.1, 0.0001, 1.0, None, None, None, "trading", TS,
    )  # fmt: skip
    doc = got["BTC-USDC"]
    assert (doc.kind, doc.tick_size, doc.lot_size, doc.contract_size, doc.settle, doc.status) == (
        "perpetual", 0.01, 1e-6, 1.0, "USDC", "trading",
    )  # fmt: skip
    spot = got["ETH-USDC"]
    assert (spot.kind, spot.symbol, spot.settle, spot.contract_size, spot.tick_size) == (
        "spot", "ETH-USDC", None, None, 0.01,
    )  # fmt: skip
    assert (got["SOL-PERP"].status, got["SOL-PERP"].contract_size) == ("paused", 10.0)
    with pytest.raises(ValueError, match="not an instrument list"):
        parse("coinbase-international", {"title": "Unauthorized", "status": 401})


# -- htx-swap ------------------------------------------------------------------------------------------


def test_htx_swap_documented_contract_info() -> None:
    """``linear-swap-api/v1/swap_contract_info``: the documented example (``BTC-USDT``, 0.001 BTC a
    contract) with the fields newer answers add, a dated USDT future, the contract states, and unusable
    items (left out)."""
    btc = {
        "symbol": "BTC", "contract_code": "BTC-USDT", "contract_size": 0.001, "price_tick": 0.1,
        "delivery_time": "", "create_date": "20201110", "contract_status": 1, "settlement_date": "1609782000000",
        "support_margin_mode": "all", "business_type": "swap", "pair": "BTC-USDT", "contract_type": "swap",
        "trade_partition": "USDT",
    }  # fmt: skip
    body = {
        "status": "ok",
        "data": [
            btc,
            {**btc, "contract_code": "BTC-USDT-251226", "business_type": "futures", "contract_type": "quarter",
             "delivery_date": "20251226", "delivery_time": "1766736000000"},
            {**btc, "symbol": "ETH", "contract_code": "ETH-USDT", "pair": "ETH-USDT", "contract_size": 0.01,
             "price_tick": 0.01, "contract_status": 5},
            {**btc, "contract_code": "XRP-USDT", "pair": "XRP-USDT", "contract_status": 3},
            {**btc, "contract_code": "LUNA-USDT", "pair": "LUNA-USDT", "contract_status": 0},
            {**btc, "contract_code": "NEW-USDT", "pair": "NEW-USDT", "contract_status": 42},
            {**btc, "contract_code": "BAD-USDT", "price_tick": -0.1},
            {**btc, "contract_code": "STR-USDT", "contract_status": "1"},
            {**btc, "contract_code": "HUGE-USDT", "contract_size": "1e999"},
            {**btc, "contract_code": "NOPAIR", "pair": None},
        ],
        "ts": 1603694455082,
    }  # fmt: skip
    got = parse("htx-swap", body)
    assert set(got) == {"BTC-USDT", "BTC-USDT-251226", "ETH-USDT", "XRP-USDT", "LUNA-USDT", "NEW-USDT"}
    assert got["BTC-USDT"] == Instrument(
        "htx-swap", "BTC-USDT-PERP", "BTC-USDT", "perpetual", "BTC", "USDT", "USDT",
        0.1, 1.0, 0.001, None, None, None, "trading", TS,
    )  # fmt: skip
    assert got["BTC-USDT-251226"] == Instrument(
        "htx-swap", "BTC-USDT-251226", "BTC-USDT-251226", "future", "BTC", "USDT", "USDT",
        0.1, 1.0, 0.001, 1766736000000 * MS, None, None, "trading", TS,
    )  # fmt: skip
    assert (got["ETH-USDT"].status, got["ETH-USDT"].contract_size) == ("trading", 0.01)  # in settlement
    assert [got[n].status for n in ("XRP-USDT", "LUNA-USDT", "NEW-USDT")] == [
        "suspended",
        "delisted",
        "status_42",
    ]
    with pytest.raises(ValueError, match="error 1000 System error"):
        parse("htx-swap", {"status": "error", "err_code": 1000, "err_msg": "System error.", "ts": 1})
    assert get_dialect("htx-swap").instruments_paths() == [
        "/linear-swap-api/v1/swap_contract_info?business_type=all"
    ]


# -- okx options ---------------------------------------------------------------------------------------


def test_okx_options_and_underlying() -> None:
    """``public/instruments?instType=OPTION&uly=BTC-USD`` items with the documented option fields
    (``stk``, ``optType``, ``ctVal`` in ``ctValCcy``, ``expTime``; values typical of BTC-USD options,
    not a verbatim example), a USD-margined ``BTC-USD_UM`` one of the same underlying, and the
    documented ``public/underlying`` answer."""
    call = {
        "instType": "OPTION", "instId": "BTC-USD-250328-100000-C", "uly": "BTC-USD", "instFamily": "BTC-USD",
        "baseCcy": "", "quoteCcy": "", "settleCcy": "BTC", "ctVal": "0.01", "ctMult": "1", "ctValCcy": "BTC",
        "optType": "C", "stk": "100000", "listTime": "1735804800000", "expTime": "1743148800000", "lever": "",
        "tickSz": "0.0005", "lotSz": "1", "minSz": "1", "ctType": "", "alias": "", "state": "live",
        "ruleType": "normal", "maxLmtSz": "10000",
    }  # fmt: skip
    body = {
        "code": "0",
        "msg": "",
        "data": [
            call,
            {**call, "instId": "BTC-USD-250328-60000-P", "optType": "P", "stk": "60000", "state": "suspend"},
            {**call, "instId": "BTC-USD_UM-250328-100000-C", "instFamily": "BTC-USD_UM", "settleCcy": "USD",
             "tickSz": "5"},
            {**call, "instId": "BTC-USD-250328-1-X", "optType": "X"},
            {**call, "instId": "BTC-USD-250328-0-C", "stk": ""},
            {**call, "instId": "BTC-USD-250328-5-C", "stk": "-5"},
        ],
    }  # fmt: skip
    got = parse("okx", body)
    assert set(got) == {"BTC-USD-250328-100000-C", "BTC-USD-250328-60000-P", "BTC-USD_UM-250328-100000-C"}
    assert got["BTC-USD-250328-100000-C"] == Instrument(
        "okx", "BTC-USD-250328-100000-C", "BTC-USD-250328-100000-C", "option", "BTC", "BTC", "BTC",
        0.0005, 1.0, 0.01, 1743148800000 * MS, 100000.0, "call", "trading", TS,
    )  # fmt: skip
    put = got["BTC-USD-250328-60000-P"]
    assert (put.strike, put.option_type, put.status) == (60000.0, "put", "suspend")
    usd = got["BTC-USD_UM-250328-100000-C"]  # USD-margined family of the same underlying
    assert (usd.base, usd.quote, usd.settle, usd.tick_size, usd.strike) == (
        "BTC",
        "USD",
        "USD",
        5.0,
        100000.0,
    )
    documented = b'{"code":"0","data":[["BTC-USD","ETH-USD"]],"msg":""}'
    assert okx_instruments.parse_underlying(documented) == ["BTC-USD", "ETH-USD"]
    assert okx_instruments.parse_underlying(b'{"code":"0","data":["SOL-USD"],"msg":""}') == ["SOL-USD"]
    for bad in (b'{"code":"0","data":[["BTC-USD", 7]]}', b'{"code":"0","data":[["../x"]]}', b'{"code":"0"}'):
        with pytest.raises(ValueError):
            okx_instruments.parse_underlying(bad)
    with pytest.raises(ValueError, match="code 50014"):
        okx_instruments.parse_underlying(
            b'{"code":"50014","msg":"Parameter instType can not be empty.","data":[]}'
        )
    assert okx_instruments.option_path("BTC-USD") == "/api/v5/public/instruments?instType=OPTION&uly=BTC-USD"


# -- hostile answers -----------------------------------------------------------------------------------

VENUES = ("kraken-futures", "coinbase-international", "htx-swap", "okx")
HOSTILE = (
    b"",
    b"{",
    b"\xff\xfe",
    b"null",
    b"42",
    b'"instruments"',
    b"{}",
    b'{"result": "success", "instruments": {"PF_XBTUSD": 1}}',
    b'{"status": "ok", "data": "x"}',
    b'{"code": "0", "data": null}',
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    b'[{"symbol": {"$gt": ""}}]',
    b"<html>502 Bad Gateway</html>",
)


@pytest.mark.parametrize("exchange", VENUES)
@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_answers_are_value_errors_or_empty(exchange: str, body: bytes) -> None:
    """A body that is not the venue's list is a ValueError (the collector's ``instruments_error`` event);
    a list of nonsense items lists nothing. Never another exception."""
    dialect = get_dialect(exchange)
    try:
        got = dialect.parse_instruments(body, TS)
    except ValueError as exc:
        assert str(exc)
        return
    assert got == []


def test_decimals_increment_bounds() -> None:
    assert decimals_increment(-3, lowest=-18) == 1000.0
    assert decimals_increment("4") == 0.0001
    for bad in (-1, 19, True, 2.5, "x", None):
        with pytest.raises((ValueError, TypeError)):
            decimals_increment(bad)


# -- simulators ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange", ["kraken-futures", "coinbase-international", "htx-swap"])
async def test_simulator_serves_the_venue_endpoint(exchange: str) -> None:
    """The shared check of test_instruments (tick, lot, contract of the model; symbols normalised)."""
    await serves(exchange)


SYMBOLS = {
    "kraken-futures": tuple(f"PF_C{i:02d}USD" for i in range(12)),
    "coinbase-international": tuple(f"C{i:02d}-PERP" for i in range(12)),
    "htx-swap": tuple(f"C{i:02d}-USDT" for i in range(12)),
}


@pytest.mark.parametrize("exchange", list(SYMBOLS))
async def test_all_symbols_against_the_simulator(exchange: str) -> None:
    """``--symbols all``: every market the simulator lists is resolved, subscribed and has book rows;
    the instruments rows are written once each."""
    dialect = get_dialect(exchange)
    natives = SYMBOLS[exchange]
    sim = dialect.simulator(SimulatorConfig(symbols=natives, rate_hz=5.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(dialect, ["all"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST)
    try:
        await collector.start()
        assert sorted(collector.symbols) == sorted(natives)
        want = {dialect.normalise_symbol(n) for n in natives}
        await until(lambda: {r[1] for r in got.book} >= want and len(got.instruments) == len(natives))
    finally:
        await collector.stop()
        await sim.stop()
    assert sorted(r[2] for r in got.instruments) == sorted(natives)
    assert {r[13] for r in got.instruments} == {"trading"}


async def test_okx_option_glob_against_the_simulator() -> None:
    """OKX options from the simulator's ``public/underlying`` and per-underlying instruments (both
    margin families of BTC-USD): a glob on the coin-margined calls subscribes exactly those, and their
    books arrive; the instruments rows carry strike, type and expiry."""
    dialect = get_dialect("okx")
    natives = (
        "BTC-USDT-SWAP",
        "BTC-USD-261225-100000-C",
        "BTC-USD-261225-120000-C",
        "BTC-USD-261225-80000-P",
        "BTC-USD_UM-261225-100000-C",
        "ETH-USD-261225-4000-C",
    )
    sim = dialect.simulator(SimulatorConfig(symbols=natives, rate_hz=5.0))
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    collector = Collector(
        dialect, ["BTC-USD-*-C"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url, settings=FAST
    )
    try:
        await collector.start()
        assert sorted(collector.symbols) == ["BTC-USD-261225-100000-C", "BTC-USD-261225-120000-C"]
        await until(lambda: {r[1] for r in got.book if r[7]} >= set(collector.symbols))
    finally:
        await collector.stop()
        await sim.stop()
    # spot/swap/futures (3 requests), underlying, one request per underlying (BTC-USD, ETH-USD)
    assert sim.instrument_requests == 6
    rows = {r[2]: r for r in got.instruments}
    assert set(rows) == set(natives)
    call = rows["BTC-USD-261225-100000-C"]
    assert call[3:7] == ("option", "BTC", "BTC", "BTC")
    assert (call[10], call[11], call[12]) == (1798185600000 * MS, 100000.0, "call")
    assert rows["BTC-USD-261225-80000-P"][12] == "put"
    assert rows["BTC-USD_UM-261225-100000-C"][4:7] == ("BTC", "USD", "USD")  # same underlying, USD-margined


async def test_garbage_instruments_answer_is_an_event_and_explicit_symbols_run() -> None:
    """The venue answers its instruments endpoint with an error body, then with a list: the first fetch
    is an ``instruments_error`` event quoting the venue's reason (the explicit symbol is collected all
    the same, the pattern waits), the next one resolves the pattern. Nothing crashes."""
    from aiohttp import web

    from collectors.venues import kraken_futures_instruments

    dialect = get_dialect("kraken-futures")
    sim = dialect.simulator(SimulatorConfig(symbols=("PF_XBTUSD", "PF_ETHUSD"), rate_hz=5.0))
    answers = [b'{"result":"error","error":"apiLimitExceeded"}']

    async def handler(request: web.Request) -> web.Response:
        if answers:
            return web.Response(body=answers.pop(), content_type="application/json")
        return web.json_response(kraken_futures_instruments.instruments_body(sim.markets))

    sim.instrument_routes = lambda: [web.get(kraken_futures_instruments.PATH, handler)]  # type: ignore[method-assign]
    await sim.start()
    got = RecordBuffer()

    async def sink(batch: RecordBuffer) -> None:
        got.extend(batch)

    settings = dataclasses.replace(FAST, instruments_refresh_s=0.3)
    collector = Collector(dialect, ["BTC-USD-PERP", "PF_ETH*"], sink, ws_url=sim.ws_url, rest_url=sim.rest_url,
                          settings=settings)  # fmt: skip
    try:
        await collector.start()
        assert collector.symbols == ["PF_XBTUSD"]
        await until(lambda: {r[1] for r in got.book if r[7]} >= {"BTC-USD-PERP", "ETH-USD-PERP"})
    finally:
        await collector.stop()
        await sim.stop()
    errors = [orjson.loads(e[5]) for e in got.feed_events if e[4] == "instruments_error"]
    assert len(errors) == 1 and "instruments: error apiLimitExceeded" in errors[0]["reason"]
    assert sorted(collector.symbols) == ["PF_ETHUSD", "PF_XBTUSD"]
