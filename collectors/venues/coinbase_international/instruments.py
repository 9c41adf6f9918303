"""Instruments of Coinbase International Exchange: ``GET https://api.international.coinbase.com/api/v1/instruments``.

Source (checked 2026-12-05): https://docs.cdp.coinbase.com/api-reference/international-exchange-api/rest-api/instruments/list-instruments
(public, no authentication; its example), the ``INSTRUMENTS`` channel of
https://docs.cloud.coinbase.com/international-exchange/websocket-feed/channels (``trading_state`` values
``offline``, ``trading``, ``paused``, ``halt``, ``delisted``, ``external``; ``base_asset_multiplier``
"the number of units in one contract") and https://docs.cdp.coinbase.com/international-exchange/concepts/instruments
(two instrument types: ``PERP`` perpetual futures and ``SPOT`` pairs). A real answer item as nautilus
records it (crates/adapters/coinbase_intx/test_data/http_get_instruments_BTC-PERP.json, 2025) has
numbers as strings and ``trading_state`` ``TRADING``; the documented example has numbers as JSON
numbers: both are read.

Answer: a JSON list of instruments; the fields we read: ``symbol`` (``BTC-PERP``, ``BTC-USDC``),
``type`` (``PERP``/``SPOT``; other types are left out), ``base_asset_name``, ``quote_asset_name``,
``quote_increment`` (the tick), ``base_increment`` (the lot: sizes are base units on both types),
``base_asset_multiplier`` (base units per contract: ``contract_size`` of a perpetual, the unit of its
open interest), ``trading_state`` (``TRADING``/``trading`` is trading; any other word is written lower
case). Perpetuals are margined and settled in their quote currency (USDC); an error answer is an
object (``{"title": .., "status": ..}``), a ValueError here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...instruments import Instrument, answer_list, build_all, listed, positive, status_of

if TYPE_CHECKING:
    from ...base import ExchangeDialect
    from ...simulator import MarketModel

PATH = "/api/v1/instruments"
_KINDS = {"PERP": "perpetual", "SPOT": "spot"}


def parse_instruments(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``api/v1/instruments`` answer."""

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = _KINDS.get(item.get("type"))  # type: ignore[arg-type]
        if kind is None:
            return None
        native = item["symbol"]
        if not isinstance(native, str):
            raise TypeError("symbol is not a string")
        native = native.upper()
        base, quote = str(item["base_asset_name"]).upper(), str(item["quote_asset_name"]).upper()
        if not base or not quote:
            raise ValueError(f"{native}: no base/quote")
        perp = kind == "perpetual"
        return listed(
            dialect,
            native,
            kind,
            base,
            quote,
            positive(item["quote_increment"]),
            positive(item["base_increment"]),
            status_of(item["trading_state"], "trading"),
            ts_recv,
            settle=quote if perp else None,
            contract_size=positive(item["base_asset_multiplier"]) if perp else None,
        )

    return build_all(answer_list(body, "api/v1/instruments"), build)


def instruments_body(markets: dict[str, MarketModel]) -> list[dict[str, Any]]:
    """A simulator's ``api/v1/instruments`` answer: ``X-PERP`` markets as USDC perpetuals of one base
    unit a contract, other names (``X-USDC``) as spot pairs; strings for numbers, as the venue sends."""
    out = []
    for i, (native, m) in enumerate(markets.items()):
        base, _, tail = native.partition("-")
        perp = tail == "PERP"
        out.append(
            {
                "instrument_id": str(149264167780483072 + i),
                "symbol": native,
                "type": "PERP" if perp else "SPOT",
                "mode": "STANDARD",
                "base_asset_name": base,
                "quote_asset_name": "USDC" if perp else tail,
                "base_increment": m.size_str(1),
                "quote_increment": f"{m.tick:.{m.price_decimals}f}",
                "min_notional_value": "10",
                "funding_interval": "3600000000000",
                "trading_state": "TRADING",
                "base_asset_multiplier": "1.0",
                "underlying_type": "SPOT",
            }
        )
    return out
