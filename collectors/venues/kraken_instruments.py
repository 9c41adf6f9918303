"""Instruments of Kraken spot: ``GET /0/public/AssetPairs`` (REST; the websocket v2 names are ``wsname``).

Sources (checked 2026-12-05): https://docs.kraken.com/api/docs/rest-api/get-tradable-asset-pairs
(fields also listed by https://apify.com/benthepythondev/kraken-asset-pairs-scraper/examples/kraken-asset-pairs-scraper-sample.md).
Public REST calls cost 1 from a counter that decays at 1 per second.

Answer ``{"error": [], "result": {"XXBTZUSD": {...}, ...}}``; each pair: ``altname``, ``wsname``
(``XBT/USD``: websocket v2 names it ``BTC/USD``, the aliases :data:`collectors.venues.kraken.ASSET_ALIASES`
map), ``base``, ``quote``, ``pair_decimals``, ``lot_decimals``, ``tick_size`` (newer answers; else
``10**-pair_decimals``), ``status`` (``online``, ``cancel_only``, ``post_only``, ``limit_only``,
``reduce_only``). Sizes are in the base asset: lot ``10**-lot_decimals``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, build_all, decimals_increment, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/0/public/AssetPairs"


def parse_asset_pairs(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of an ``AssetPairs`` answer (pairs without a ``wsname`` are not on the websocket)."""
    data = orjson.loads(body)
    if data.get("error"):
        raise ValueError(f"AssetPairs: {str(data['error'])[:120]}")
    pairs = data["result"]
    if not isinstance(pairs, dict):
        raise ValueError("AssetPairs: 'result' is not an object")

    def build(item: dict[str, Any]) -> Instrument | None:
        wsname = item.get("wsname")
        if not wsname:
            return None
        native = dialect.native_symbol(str(wsname))
        base, quote = native.split("/")
        tick = item.get("tick_size")
        status = str(item.get("status", "online"))
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind="spot",
            base=base,
            quote=quote,
            settle=None,
            tick_size=positive(tick) if tick is not None else decimals_increment(item["pair_decimals"]),
            lot_size=decimals_increment(item["lot_decimals"]),
            contract_size=None,
            expiry=None,
            strike=None,
            option_type=None,
            status=TRADING if status == "online" else status,
            ts_recv=ts_recv,
        )

    return build_all(pairs.values(), build)


def asset_pairs_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``AssetPairs`` answer for its markets."""
    result = {}
    for native, m in markets.items():
        base, quote = native.split("/")
        result[f"{base}{quote}"] = {
            "altname": f"{base}{quote}",
            "wsname": native,
            "base": base,
            "quote": quote,
            "pair_decimals": m.price_decimals,
            "cost_decimals": m.price_decimals,
            "lot_decimals": m.size_decimals,
            "tick_size": f"{m.tick:.{m.price_decimals}f}",
            "ordermin": m.size_str(1),
            "status": "online",
        }
    return {"error": [], "result": result}
