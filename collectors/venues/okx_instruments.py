"""Instruments of OKX v5: ``GET /api/v5/public/instruments?instType=SPOT|SWAP|FUTURES``.

Source (checked 2026-12-05): https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments
(field list cross-checked with https://nautilustrader.io/docs/core-nightly/nautilus_okx/common/models/struct.OKXInstrument.html).
Rate limit 20 requests per 2 s (IP + instType). Options need an ``instFamily`` per underlying and are not
collected here.

Answer ``{"code":"0","msg":"","data":[..]}``; each item: ``instType``, ``instId``, ``baseCcy`` and
``quoteCcy`` (spot; empty on derivatives, whose pair is ``uly``/``instFamily`` ``BTC-USDT``),
``settleCcy``, ``ctVal`` x ``ctMult`` (contract size) in ``ctValCcy`` (the base coin for linear
contracts, the quote currency for inverse ones), ``tickSz``, ``lotSz`` (base units on spot, contracts
on derivatives), ``expTime`` (ms, empty for swaps), ``state`` (``live``, ``suspend``, ``preopen``,
``test``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, build_all, ms_to_ns, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/api/v5/public/instruments"
INST_TYPES = ("SPOT", "SWAP", "FUTURES")
_KINDS = {"SPOT": "spot", "SWAP": "perpetual", "FUTURES": "future"}
_DATED = re.compile(r"-\d{6}$")


def parse_okx_instruments(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``public/instruments`` answer."""
    data = orjson.loads(body)
    if str(data.get("code")) != "0":
        raise ValueError(f"public/instruments: code {data.get('code')} {str(data.get('msg'))[:80]}")

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = _KINDS.get(str(item["instType"]))
        if kind is None:
            return None
        native = str(item["instId"]).upper()
        if kind == "spot":
            base, quote = str(item["baseCcy"]), str(item["quoteCcy"])
            settle, contract_size = None, None
        else:
            base, _, quote = str(item.get("instFamily") or item["uly"]).partition("-")
            settle = str(item["settleCcy"])
            contract_size = positive(item["ctVal"]) * float(item.get("ctMult") or 1)
        if not base or not quote:
            raise ValueError(f"{native}: no base/quote")
        state = str(item["state"])
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind=kind,
            base=base,
            quote=quote,
            settle=settle,
            tick_size=positive(item["tickSz"]),
            lot_size=positive(item["lotSz"]),
            contract_size=contract_size,
            expiry=ms_to_ns(item.get("expTime")) if kind == "future" else None,
            strike=None,
            option_type=None,
            status=TRADING if state == "live" else state,
            ts_recv=ts_recv,
        )

    return build_all(data["data"], build)


def inst_type_of(native: str) -> str:
    """The ``instType`` of a simulator market by its name."""
    if native.endswith("-SWAP"):
        return "SWAP"
    return "FUTURES" if _DATED.search(native) else "SPOT"


def okx_instruments_body(inst_type: str, markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``public/instruments`` answer for its markets of one ``instType``."""
    data = []
    for native, m in markets.items():
        if inst_type_of(native) != inst_type:
            continue
        base, quote = native.split("-")[:2]
        item: dict[str, Any] = {
            "instType": inst_type,
            "instId": native,
            "baseCcy": base if inst_type == "SPOT" else "",
            "quoteCcy": quote if inst_type == "SPOT" else "",
            "settleCcy": "" if inst_type == "SPOT" else quote,
            "uly": "" if inst_type == "SPOT" else f"{base}-{quote}",
            "instFamily": "" if inst_type == "SPOT" else f"{base}-{quote}",
            "ctVal": "" if inst_type == "SPOT" else "0.01",
            "ctMult": "" if inst_type == "SPOT" else "1",
            "ctValCcy": "" if inst_type == "SPOT" else base,
            "ctType": "" if inst_type == "SPOT" else "linear",
            "tickSz": f"{m.tick:.{m.price_decimals}f}",
            "lotSz": m.size_str(1),
            "minSz": m.size_str(1),
            "expTime": "",
            "listTime": "1600000000000",
            "state": "live",
        }
        data.append(item)
    return {"code": "0", "msg": "", "data": data}
