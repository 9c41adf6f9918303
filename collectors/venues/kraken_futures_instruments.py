"""Instruments of Kraken Futures: ``GET https://futures.kraken.com/derivatives/api/v3/instruments``.

Source (checked 2026-12-05): https://docs.kraken.com/api-reference/instrument-details/get-instruments
(the documented example, no authentication), with the field types of Kraken's published schema of the
same answer (https://raw.githubusercontent.com/api-evangelist/kraken/refs/heads/main/json-schema/futures-rest-instruments-response-schema.json:
``type`` one of ``futures_inverse``, ``futures_vanilla``, ``flexible_futures``, ``perpetual_inverse``,
``perpetual_vanilla``) and nautilus-kraken's model of it
(https://nautilustrader.io/docs/rust-api-latest/nautilus_kraken/http/futures/models/struct.FuturesInstrument.html,
2026-12-05: ``underlying`` "only present for inverse futures, not for flexible futures").

Answer ``{"result": "success", "instruments": [..], "serverTime": ..}`` (``{"result": "error", "error":
..}`` otherwise); each instrument: ``symbol`` (``PF_XBTUSD``), ``type``, ``base``/``quote``/``pair``
(``XBT``, ``USD``, ``XBT:USD``; older answers have only ``symbol``), ``tickSize``, ``contractSize``,
``contractValueTradePrecision``, ``lastTradingTime`` (ISO, dated futures only), ``tradeable``.

Mapping:
- Kraken's symbol prefix names the product (the normaliser's rule too): first letter ``P`` perpetual,
  ``F`` dated future (``lastTradingTime`` is its expiry); second letter ``F`` flexible (multi-collateral,
  linear, margined and settled in USD), ``V`` vanilla (linear, settled in the quote currency), ``I``
  inverse (settled in the base coin). The prefix decides, not ``type``: the documented example labels
  ``PF_XBTUSD`` ``futures_inverse`` with an ``underlying``, while the PF prefix, the model above and the
  live answers say flexible. Other entries (indices ``in_``/``rr_`` of older answers) are left out.
- ``tick_size`` ``tickSize``; ``lot_size`` ``10**-contractValueTradePrecision`` (sizes are contracts to
  that many decimals; the precision may be negative, ``-3``: whole thousands; absent in older answers:
  whole contracts); ``contract_size`` ``contractSize``: base units for linear contracts (``PF_XBTUSD`` 1
  = 1 BTC, so its sizes and open interest read as BTC), quote units for inverse ones (``PI_XBTUSD`` 1 =
  1 USD).
- ``XBT`` is written ``BTC`` (as in the symbols); ``status`` is ``trading`` when ``tradeable`` is true,
  ``untradeable`` otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events import iso_to_ns
from ..instruments import TRADING, Instrument, answer_list, build_all, decimals_increment, listed, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/derivatives/api/v3/instruments"
#: prefix letter -> kind, settlement style
_KINDS = {"P": "perpetual", "F": "future"}
_STYLES = ("F", "V", "I")


def _asset(code: Any) -> str:
    text = str(code).upper()
    return "BTC" if text == "XBT" else text


def _pair(item: dict[str, Any], rest: str) -> tuple[str, str]:
    """(base, quote) from ``base``/``quote``, else ``pair`` (``XBT:USD``), else the symbol (``XBTUSD``)."""
    if item.get("base") and item.get("quote"):
        return _asset(item["base"]), _asset(item["quote"])
    pair = item.get("pair")
    if isinstance(pair, str) and ":" in pair:
        base, _, quote = pair.partition(":")
        return _asset(base), _asset(quote)
    code = rest.split("_")[0]
    if code.endswith("USD") and len(code) > 3:
        return _asset(code[:-3]), "USD"
    raise ValueError(f"no base/quote in {rest!r}")


def _error(answer: dict[str, Any]) -> str | None:
    return None if answer.get("result") == "success" else f"error {str(answer.get('error'))[:80]}"


def parse_instruments(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of one ``derivatives/api/v3/instruments`` answer."""
    items = answer_list(body, "instruments", "instruments", _error)

    def build(item: dict[str, Any]) -> Instrument | None:
        native = item["symbol"]
        if not isinstance(native, str):
            raise TypeError("symbol is not a string")
        native = native.upper()
        prefix, sep, rest = native.partition("_")
        if not sep or len(prefix) != 2 or prefix[0] not in _KINDS or prefix[1] not in _STYLES:
            return None
        kind = _KINDS[prefix[0]]
        base, quote = _pair(item, rest)
        tradeable = item["tradeable"]
        if not isinstance(tradeable, bool):
            raise TypeError("tradeable is not a boolean")
        expiry = None
        if kind == "future":
            expiry = iso_to_ns(item["lastTradingTime"])
        return listed(
            dialect,
            native,
            kind,
            base,
            quote,
            positive(item["tickSize"]),
            decimals_increment(item.get("contractValueTradePrecision", 0), lowest=-18),
            TRADING if tradeable else "untradeable",
            ts_recv,
            settle=base if prefix[1] == "I" else quote,
            contract_size=positive(item["contractSize"]),
            expiry=expiry,
        )

    return build_all(items, build)


def instruments_body(markets: dict[str, MarketModel]) -> dict[str, Any]:
    """A simulator's ``instruments`` answer: its markets as flexible perpetuals (``PF_``), one base unit
    a contract, sizes to the model's size decimals."""
    items = []
    for native, m in markets.items():
        code = native.partition("_")[2]
        base = code[:-3] if code.endswith("USD") else code
        items.append(
            {
                "symbol": native,
                "pair": f"{base}:USD",
                "base": base,
                "quote": "USD",
                "type": "flexible_futures",
                "tickSize": m.tick,
                "contractSize": 1,
                "tradeable": True,
                "impactMidSize": 1,
                "maxPositionSize": 1000000,
                "openingDate": "2022-01-01T00:00:00.000Z",
                "marginLevels": [{"contracts": 0, "initialMargin": 0.02, "maintenanceMargin": 0.01}],
                "contractValueTradePrecision": m.size_decimals,
                "postOnly": False,
                "mtf": False,
            }
        )
    return {"result": "success", "instruments": items, "serverTime": "2026-12-05T00:00:00.000Z"}
