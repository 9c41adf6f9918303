"""Instruments of BitMEX: ``GET /api/v1/instrument/active``, parsed and served.

Endpoint (checked 2026-12-05): https://www.bitmex.com/api/explorer/#!/Instrument/Instrument_getActive
("all active instruments and instruments that have expired in <24hrs"; one request of the 120-per-minute
public REST budget, https://www.bitmex.com/app/restAPI#Limits); field list cross-checked against
nautilus-bitmex's model of the same answer,
https://docs.rs/nautilus-bitmex/latest/nautilus_bitmex/http/models/struct.BitmexInstrument.html (2026-12-05).

A list of instrument objects; the fields we read:
- ``symbol``; ``typ`` (instrument type, CFI-like): ``FFWCSX``/``FFWCSF`` perpetual, ``FFCCSX`` dated
  future, ``IFXXXP`` spot; anything else (indices ``MRCXXX``..., options) is left out;
- ``state``: ``Open`` is trading; ``Closed``, ``Unlisted``, ``Settled`` are written lower-case;
- ``underlying`` (``XBT``: written ``BTC``, as in the symbols), ``quoteCurrency``, ``settlCurrency``
  (in minor units: ``XBt`` is BTC in satoshi, ``USDt`` USDT in micro-units, ``Gwei`` ETH);
- ``tickSize`` (the tick), ``lotSize`` (the lot, in contracts as every BitMEX size is), ``expiry``
  (ISO time; a dated future's expiry, null on perpetuals);
- contract size, from ``multiplier`` (the contract's value in settlement minor units: divided by the
  price for an inverse contract, times the price otherwise) and the currency multipliers. An inverse
  contract (``XBTUSD``: multiplier -100000000, ``underlyingToSettleMultiplier`` -100000000, XBT to XBt)
  is ``|multiplier / underlyingToSettleMultiplier|`` quote units (1 USD); a linear one (``XBTUSDT``:
  multiplier 1, ``quoteToSettleMultiplier`` 1000000, USDT to USDt) is ``multiplier /
  quoteToSettleMultiplier`` base units (1e-6 XBT, which ``underlyingToPositionMultiplier`` 1000000 also
  says). A quanto contract (``ETHUSD``: ``multiplier`` XBt per USD of price) has no fixed size in its
  base or quote: its ``contract_size`` is null rather than a guess, as is a spot pair's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..events import iso_to_ns
from ..instruments import TRADING, Instrument, build_all, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

PATH = "/api/v1/instrument/active"
#: ``typ`` -> our kind
KIND_OF_TYP = {"FFWCSX": "perpetual", "FFWCSF": "perpetual", "FFCCSX": "future", "IFXXXP": "spot"}
#: settlement currencies BitMEX names by their minor unit
_SETTLE = {"XBt": "BTC", "USDt": "USDT", "Gwei": "ETH"}


def _asset(code: Any) -> str:
    text = str(code)
    return "BTC" if text == "XBT" else _SETTLE.get(text, text.upper())


def _contract_size(item: dict[str, Any]) -> float | None:
    multiplier = abs(float(item["multiplier"]))
    if item.get("isInverse"):
        return multiplier / positive(abs(float(item["underlyingToSettleMultiplier"])))
    if item.get("isQuanto"):
        return None
    return multiplier / positive(item["quoteToSettleMultiplier"])


def parse_active(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of an ``instrument/active`` answer."""
    items = orjson.loads(body)
    if not isinstance(items, list):
        raise ValueError(f"instrument/active: not a list: {str(items)[:120]}")

    def build(item: dict[str, Any]) -> Instrument | None:
        kind = KIND_OF_TYP.get(item.get("typ"))  # type: ignore[arg-type]
        if kind is None:
            return None
        native = item["symbol"]
        if not isinstance(native, str):
            raise TypeError("symbol is not a string")
        state = str(item["state"])
        expiry = item.get("expiry")
        return Instrument(
            exchange=dialect.exchange_id,
            symbol=dialect.normalise_symbol(native),
            native_symbol=native,
            kind=kind,
            base=_asset(item["underlying"]),
            quote=_asset(item["quoteCurrency"]),
            settle=None if kind == "spot" else _asset(item["settlCurrency"]),
            tick_size=positive(item["tickSize"]),
            lot_size=positive(item["lotSize"]),
            contract_size=None if kind == "spot" else _contract_size(item),
            expiry=iso_to_ns(expiry) if kind == "future" and expiry else None,
            strike=None,
            option_type=None,
            status=TRADING if state == "Open" else state.lower(),
            ts_recv=ts_recv,
        )

    return build_all(items, build)


def active_body(markets: dict[str, MarketModel]) -> list[dict[str, Any]]:
    """A simulator's ``instrument/active``: its markets as linear perpetuals settled in USDT whose
    contract is one model lot (``10**-size_decimals`` base units), as its streams count sizes in lots."""
    from .bitmex import _PERP_RE

    out = []
    for native, m in markets.items():
        match = _PERP_RE.match(native)
        underlying, quote = match.groups() if match else (native, "USD")
        out.append(
            {
                "symbol": native,
                "rootSymbol": underlying,
                "state": "Open",
                "typ": "FFWCSX",
                "expiry": None,
                "underlying": underlying,
                "quoteCurrency": quote,
                "settlCurrency": "USDt",
                "positionCurrency": underlying,
                "tickSize": m.tick,
                "lotSize": 1,
                "multiplier": 10 ** (6 - m.size_decimals),
                "isQuanto": False,
                "isInverse": False,
                "underlyingToPositionMultiplier": 10**m.size_decimals,
                "underlyingToSettleMultiplier": None,
                "quoteToSettleMultiplier": 1000000,
            }
        )
    return out
