"""Instruments of Deribit: ``GET /api/v2/public/get_instruments?currency=any&expired=false``.

Source (checked 2026-12-05): https://docs.deribit.com/api-reference/market-data/public-get_instruments
(its own rate limit: sustained 1 request per second). The shared recording
``../shared/samples/deribit/deribit_cryptofeed.requests.jsonl.gz`` holds real answers (per currency, 2021).

Answer ``{"jsonrpc": "2.0", "result": [..]}``; each instrument: ``instrument_name``, ``kind``
(``future``, ``option``, ``spot``, ``future_combo``, ``option_combo``: combos are not collected),
``settlement_period`` (``perpetual`` marks a perpetual future), ``base_currency``, ``quote_currency``,
``settlement_currency`` (absent in old answers: then the base currency, as inverse contracts settle),
``tick_size``, ``min_trade_amount`` (sizes are whole multiples of it: the lot), ``contract_size``,
``expiration_timestamp`` (ms; perpetuals carry year 3000), ``strike`` and ``option_type``
(``call``/``put``) on options, ``is_active`` (``state`` in newer answers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, build_all, ms_to_ns, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/public/get_instruments"
QUERY = "?currency=any&expired=false"
_KINDS = {"future": "future", "option": "option", "spot": "spot"}


def parse_get_instruments(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``public/get_instruments`` answer."""
    data = orjson.loads(body)
    if "error" in data:
        raise ValueError(f"get_instruments: {str(data['error'])[:120]}")
    result = data["result"]
    if not isinstance(result, list):
        raise ValueError("get_instruments: 'result' is not a list")

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = _KINDS.get(str(item["kind"]))
        if kind is None:
            return None
        if kind == "future" and item.get("settlement_period") == "perpetual":
            kind = "perpetual"
        native = str(item["instrument_name"])
        base = str(item["base_currency"])
        state = item.get("state")
        active = item.get("is_active", state in (None, "open"))
        status = TRADING if active and state in (None, "open") else str(state or "inactive")
        option = kind == "option"
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind=kind,
            base=base,
            quote=str(item["quote_currency"]),
            settle=None if kind == "spot" else str(item.get("settlement_currency") or base),
            tick_size=positive(item["tick_size"]),
            lot_size=positive(item["min_trade_amount"]),
            contract_size=None if kind == "spot" else positive(item["contract_size"]),
            expiry=ms_to_ns(item["expiration_timestamp"]) if kind in ("future", "option") else None,
            strike=positive(item["strike"]) if option else None,
            option_type=str(item["option_type"]) if option else None,
            status=status,
            ts_recv=ts_recv,
        )

    return build_all(result, build)


def get_instruments_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``public/get_instruments`` answer for its markets (perpetuals, as it simulates)."""
    result = []
    for native, m in markets.items():
        head = native.split("-")[0]
        base, _, settle = head.partition("_")
        linear = bool(settle)
        result.append(
            {
                "instrument_name": native,
                "kind": "future",
                "settlement_period": "perpetual",
                "base_currency": base,
                "quote_currency": settle or "USD",
                "counter_currency": settle or "USD",
                "settlement_currency": settle or base,
                "future_type": "linear" if linear else "reversed",
                "tick_size": m.tick,
                "min_trade_amount": 10**-m.size_decimals,
                "contract_size": 10**-m.size_decimals if linear else 10.0,
                "expiration_timestamp": 32503708800000,
                "creation_timestamp": 1534167754000,
                "is_active": True,
                "state": "open",
            }
        )
    return {"jsonrpc": "2.0", "result": result, "usIn": 0, "usOut": 0, "usDiff": 0, "testnet": False}
