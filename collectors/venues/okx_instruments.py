"""Instruments of OKX v5: ``GET /api/v5/public/instruments?instType=SPOT|SWAP|FUTURES``, and options per
underlying: ``GET /api/v5/public/underlying?instType=OPTION`` then
``GET /api/v5/public/instruments?instType=OPTION&uly=<underlying>`` for each underlying it lists.

Sources (checked 2026-12-05): https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments
(field list cross-checked with https://nautilustrader.io/docs/core-nightly/nautilus_okx/common/models/struct.OKXInstrument.html;
"If instType is OPTION, either uly or instFamily is required", as xapi-okx's request model quotes it,
https://docs.rs/xapi-okx/latest/src/xapi_okx/data/instrument.rs.html) and
https://www.okx.com/docs-v5/en/#public-data-rest-api-get-underlying (``{"code": "0", "data":
[["BTC-USD", "ETH-USD"]]}``: one list of underlyings). Rate limit 20 requests per 2 s (IP + instType)
for instruments, 20 per 2 s for underlying.

Underlying, not family: ``uly`` (the index, ``BTC-USD``) is one-to-many with ``instFamily`` (the margin
family): coin-margined options are family ``BTC-USD``, USD-margined ones ``BTC-USD_UM`` (instIds
``BTC-USD_UM-260626-100000-C``), both of underlying ``BTC-USD`` (OKX's table of uly, instFamily and
settleCcy as transcribed in https://pkg.go.dev/github.com/banbox/banexg/okx, 2026-12-05). The
underlying list names no family, so asking per family would miss the ``_UM`` ones; one request per
underlying lists every family of it.

Answer ``{"code":"0","msg":"","data":[..]}``; each item: ``instType``, ``instId``, ``baseCcy`` and
``quoteCcy`` (spot; empty on derivatives, whose pair is ``uly``/``instFamily`` ``BTC-USDT``),
``settleCcy``, ``ctVal`` x ``ctMult`` (contract size) in ``ctValCcy`` (the base coin for linear
contracts and options, the quote currency for inverse ones), ``tickSz``, ``lotSz`` (base units on spot,
contracts on derivatives), ``expTime`` (ms, empty for swaps), ``state`` (``live``, ``suspend``,
``preopen``, ``test``); options add ``stk`` (strike, in the family's quote currency, USD) and ``optType``
(``C``/``P``, written ``call``/``put``).

Options (``BTC-USD-261225-100000-C``) keep OKX's name as their symbol (DESIGN.md). Their premium is quoted
in the settlement currency (``BTC`` for the coin-margined ``BTC-USD`` family): ``quote`` is
``settleCcy`` for options (prices are in it, as Deribit's ``quote_currency`` of an option says the
same), ``base`` the underlying's base; ``contract_size`` ``ctVal`` x ``ctMult`` base coins (0.01 BTC);
``lot_size`` ``lotSz`` contracts. A fetch needs every answer: a failed underlying fails the fetch (an
``instruments_error``), so a partial list never reads as options being delisted.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..instruments import (
    Instrument,
    answer_list,
    build_all,
    listed,
    ms_to_ns,
    positive,
    status_of,
)

if TYPE_CHECKING:
    import aiohttp

    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/api/v5/public/instruments"
UNDERLYING_PATH = "/api/v5/public/underlying"
#: instrument types listed without a family (options need one: :func:`option_paths`)
INST_TYPES = ("SPOT", "SWAP", "FUTURES")
_KINDS = {"SPOT": "spot", "SWAP": "perpetual", "FUTURES": "future", "OPTION": "option"}
_OPTION_TYPES = {"C": "call", "P": "put"}
_DATED = re.compile(r"-\d{6}$")
_OPTION = re.compile(r"^[A-Z0-9]+-[A-Z0-9_]+-\d{6}-[0-9.]+-[CP]$")


def _okx_error(answer: dict[str, Any]) -> str | None:
    code = str(answer.get("code"))
    return None if code == "0" else f"code {code} {str(answer.get('msg'))[:80]}"


def parse_okx_instruments(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``public/instruments`` answer (any ``instType``)."""
    items = answer_list(body, "public/instruments", "data", _okx_error)

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = _KINDS.get(str(item["instType"]))
        if kind is None:
            return None
        native = str(item["instId"]).upper()
        option = kind == "option"
        if kind == "spot":
            base, quote = str(item["baseCcy"]), str(item["quoteCcy"])
            settle, contract_size = None, None
        else:
            # the underlying (``BTC-USD``), not the family (``BTC-USD_UM``): its base and quote
            pair = str(item.get("uly") or item["instFamily"]).split("_")[0]
            base, _, quote = pair.partition("-")
            settle = str(item["settleCcy"])
            contract_size = positive(item["ctVal"]) * float(item.get("ctMult") or 1)
            if option:
                quote = settle
        if not base or not quote:
            raise ValueError(f"{native}: no base/quote")
        return listed(
            dialect,
            native,
            kind,
            base,
            quote,
            positive(item["tickSz"]),
            positive(item["lotSz"]),
            status_of(item["state"], "live"),
            ts_recv,
            settle=settle,
            contract_size=contract_size,
            expiry=ms_to_ns(item.get("expTime")) if kind in ("future", "option") else None,
            strike=positive(item["stk"]) if option else None,
            option_type=_OPTION_TYPES[str(item["optType"])] if option else None,
        )

    return build_all(items, build)


def parse_underlying(body: str | bytes) -> list[str]:
    """The option underlyings of a ``public/underlying?instType=OPTION`` answer (documented as one list
    inside ``data``; a flat list is read too). A name that is not ``BASE-QUOTE`` is a ValueError."""
    data = answer_list(body, "public/underlying", "data", _okx_error)
    names = data[0] if data and isinstance(data[0], list) else data
    underlyings: list[str] = []
    for name in names:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9]+-[A-Za-z0-9]+", name):
            raise ValueError(f"public/underlying: not an underlying: {str(name)[:40]!r}")
        if name.upper() not in underlyings:
            underlyings.append(name.upper())
    return underlyings


def option_path(underlying: str) -> str:
    """The instruments request of the options of one underlying (every family of it)."""
    return f"{PATH}?instType=OPTION&uly={underlying}"


async def fetch_options(
    dialect: ExchangeDialect,
    http: aiohttp.ClientSession,
    rest_url: str,
    spend: Callable[[int], Awaitable[None]] | None = None,
) -> list[Instrument]:
    """Every option: the underlyings of ``public/underlying``, then each one's options (one request
    each, within the REST budget)."""
    listing = await dialect.instruments_body(http, rest_url, f"{UNDERLYING_PATH}?instType=OPTION", spend)
    out: list[Instrument] = []
    for underlying in parse_underlying(listing):
        body = await dialect.instruments_body(http, rest_url, option_path(underlying), spend)
        out.extend(parse_okx_instruments(dialect, body, time.time_ns()))
    return out


def inst_type_of(native: str) -> str:
    """The ``instType`` of a simulator market by its name."""
    if native.endswith("-SWAP"):
        return "SWAP"
    if _OPTION.match(native):
        return "OPTION"
    return "FUTURES" if _DATED.search(native) else "SPOT"


def family_of(native: str) -> str:
    """The family (``instFamily``) of a derivative: ``BTC-USD-261225-100000-C`` -> ``BTC-USD``,
    ``BTC-USD_UM-261225-100000-C`` -> ``BTC-USD_UM``."""
    return "-".join(native.split("-")[:2])


def underlying_of(native: str) -> str:
    """The underlying (``uly``) of a derivative: its family without the margin suffix (``BTC-USD``)."""
    return family_of(native).split("_")[0]


def _expiry_ms(native: str) -> str:
    """A dated simulator market's expiry: 08:00 UTC of the ``yymmdd`` in its name (OKX's delivery hour)."""
    day = native.split("-")[2]
    when = datetime.datetime(2000 + int(day[:2]), int(day[2:4]), int(day[4:]), 8, tzinfo=datetime.UTC)
    return str(int(when.timestamp()) * 1000)


def underlying_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``public/underlying?instType=OPTION`` answer: the underlyings of its option markets."""
    underlyings = list(dict.fromkeys(underlying_of(n) for n in markets if inst_type_of(n) == "OPTION"))
    return {"code": "0", "msg": "", "data": [underlyings]}


def okx_instruments_body(
    inst_type: str, markets: dict[str, MarketModel], family: str = "", underlying: str = ""
) -> dict[str, Any]:
    """A simulator's ``public/instruments`` answer for its markets of one ``instType`` (options: of one
    family or underlying). Options of family ``X-USD`` are coin-margined (settled and quoted in X), of
    ``X-USD_UM`` USD-margined (settled and quoted in USD), 0.01 X a contract, with the market's tick;
    other derivatives linear, 0.01 base a contract."""
    data = []
    for native, m in markets.items():
        if inst_type_of(native) != inst_type or (family and family_of(native) != family):
            continue
        if underlying and underlying_of(native) != underlying:
            continue
        base, quote = underlying_of(native).split("-") if inst_type != "SPOT" else native.split("-")[:2]
        spot, option = inst_type == "SPOT", inst_type == "OPTION"
        parts = native.split("-")
        settle = (quote if family_of(native).endswith("_UM") else base) if option else quote
        item: dict[str, Any] = {
            "instType": inst_type,
            "instId": native,
            "baseCcy": base if spot else "",
            "quoteCcy": quote if spot else "",
            "settleCcy": "" if spot else settle,
            "uly": "" if spot else f"{base}-{quote}",
            "instFamily": "" if spot else family_of(native),
            "ctVal": "" if spot else "0.01",
            "ctMult": "" if spot else "1",
            "ctValCcy": "" if spot else base,
            "ctType": "linear" if inst_type in ("SWAP", "FUTURES") else "",
            "optType": parts[4] if option else "",
            "stk": parts[3] if option else "",
            "tickSz": f"{m.tick:.{m.price_decimals}f}",
            "lotSz": m.size_str(1),
            "minSz": m.size_str(1),
            "expTime": _expiry_ms(native) if inst_type in ("FUTURES", "OPTION") else "",
            "listTime": "1600000000000",
            "state": "live",
        }
        data.append(item)
    return {"code": "0", "msg": "", "data": data}
