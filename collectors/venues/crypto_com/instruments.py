"""Instruments of Crypto.com Exchange v1: ``GET /exchange/v1/public/get-instruments`` (public, no key).

Sources (checked 2026-12-05):
https://exchange-docs.crypto.com/exchange/v1/rest-ws/index.html#public-get-instruments and its newer
rendering https://exchange-developer.crypto.com/exchange/v1/docs/api/rest/public-get-instruments
(fields, the documented example, the error envelope); public market-data REST methods allow 100
requests per second per IP ("Rate Limits" of the first page). One request lists every instrument.

Answer ``{"id", "method": "public/get-instruments", "code": 0, "result": {"data": [..]}}`` (``code`` is
a number or a numeric string; non-zero is an error with ``message``). Each item:

- ``symbol`` (``BTC_USDT`` spot, ``BTCUSD-PERP`` perpetual, ``BTCUSD-251226`` dated future) and
  ``inst_type``: ``CCY_PAIR`` -> ``spot``, ``PERPETUAL_SWAP`` -> ``perpetual``, ``FUTURE`` -> ``future``;
  any other type (combos, prediction-market events) is not collected here and is left out;
- ``base_ccy``, ``quote_ccy``; derivatives settle in the quote currency;
- ``price_tick_size`` is the tick, ``qty_tick_size`` the lot (``quote_decimals``/``quantity_decimals``
  are the same steps as decimal counts and are not read);
- ``contract_size`` (decimal string, "x-business-units" only on some deployments): base units per
  contract of a derivative; absent, a derivative's quantity is in base units (contract size 1: the
  documented example, ``BTCUSD-PERP`` with ``qty_tick_size`` 0.0001, is quoted in BTC);
- ``expiry_timestamp_ms`` (ms; numeric string or number) is the expiry of a ``FUTURE`` (the documented
  example gives one on a perpetual too: ignored there);
- ``tradable``: ``true`` -> ``trading``, ``false`` -> ``untradable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ...instruments import TRADING, Instrument, build_all, currency, listed, ms_to_ns, positive

if TYPE_CHECKING:
    from ...base import ExchangeDialect
    from ...simulator import MarketModel

PATH = "/exchange/v1/public/get-instruments"
_KINDS = {"CCY_PAIR": "spot", "PERPETUAL_SWAP": "perpetual", "FUTURE": "future"}


def parse_get_instruments(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``public/get-instruments`` answer."""
    answer = orjson.loads(body)
    if not isinstance(answer, dict):
        raise ValueError(f"get-instruments: not an object: {str(answer)[:120]}")
    if str(answer.get("code", "0")) != "0":
        raise ValueError(f"get-instruments: code {answer.get('code')} {str(answer.get('message'))[:80]}")
    result = answer.get("result")
    data = result.get("data") if isinstance(result, dict) else None
    if not isinstance(data, list):
        raise ValueError(f"get-instruments: 'result.data' is not a list: {str(answer)[:120]}")

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = _KINDS.get(item["inst_type"])
        if kind is None:
            return None
        native = item["symbol"]
        if not isinstance(native, str):
            raise TypeError("symbol is not a string")
        quote = currency(item["quote_ccy"])
        derivative = kind != "spot"
        size = item.get("contract_size")
        return listed(
            dialect,
            native,
            kind,
            currency(item["base_ccy"]),
            quote,
            positive(item["price_tick_size"]),
            positive(item["qty_tick_size"]),
            TRADING if item["tradable"] is True else "untradable",
            ts_recv,
            settle=quote if derivative else None,
            contract_size=(1.0 if size is None or size == "" else positive(size)) if derivative else None,
            expiry=ms_to_ns(item["expiry_timestamp_ms"]) if kind == "future" else None,
        )

    return build_all(data, build)


def get_instruments_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``public/get-instruments`` answer for its markets (spot ``BASE_QUOTE`` pairs and
    ``BASEQUOTE-PERP`` perpetuals, as the simulator's streams name them)."""
    from .client import PERP_QUOTES, PERP_SUFFIX

    data = []
    for native, m in markets.items():
        if "_" in native:
            base, quote = native.split("_", 1)
            inst_type = "CCY_PAIR"
        else:
            pair = native.removesuffix(PERP_SUFFIX)
            quote = next((q for q in PERP_QUOTES if pair.endswith(q)), "USD")
            base, inst_type = pair[: -len(quote)], "PERPETUAL_SWAP"
        data.append(
            {
                "symbol": native,
                "inst_type": inst_type,
                "display_name": f"{base}/{quote}" if inst_type == "CCY_PAIR" else f"{base}{quote} Perpetual",
                "base_ccy": base,
                "quote_ccy": quote,
                "quote_decimals": m.price_decimals,
                "quantity_decimals": m.size_decimals,
                "price_tick_size": f"{m.tick:.{m.price_decimals}f}",
                "qty_tick_size": m.size_str(1),
                "max_leverage": "50" if inst_type != "CCY_PAIR" else "1",
                "tradable": True,
                "expiry_timestamp_ms": 0,
                "underlying_symbol": f"{base}{quote}-INDEX" if inst_type != "CCY_PAIR" else None,
            }
        )
    return {"id": 1, "method": "public/get-instruments", "code": 0, "result": {"data": data}}
