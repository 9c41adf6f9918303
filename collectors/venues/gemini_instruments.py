"""Instruments of Gemini: ``GET /v1/symbols`` then ``GET /v1/symbols/details/{symbol}`` for each symbol.

Sources (checked 2026-12-05): https://docs.gemini.com/rest/market-data (List Symbols, Get Symbol
Details; the same page at https://developer.gemini.com/trading/rest-api/market-data/get-symbol-details)
and https://docs.gemini.com/rate-limit (public endpoints: 120 requests per minute, "we recommend that you
do not exceed 1 request per second"; above the rate five more requests are queued, then 429).

- ``/v1/symbols``: a JSON list of lower-case symbol names (``["btcusd", "ethbtc", ...]``); the native
  symbol is the upper-case name the websocket uses (``BTCUSD``, perpetuals ``BTCGUSDPERP``).
- Gemini documents no bulk details endpoint, so the details cost one request per symbol (347 in the
  shared recording of 2026-08): they are paced at the documented recommendation, bursts of
  :data:`DETAILS_BURST` (the queue Gemini allows) and on average one per second, so the first fetch
  takes about one second per listed symbol (~6 minutes for 347 symbols). Later fetches (the hourly
  refresh) read the list (one request), fetch the details of every newly listed symbol at once, and
  re-read the details of at most :data:`DETAILS_REVERIFY` already known symbols, the longest unread
  first (:class:`DetailsCache`): 347 symbols are all re-read every ~12 refreshes, so a changed tick
  size or status of a known symbol is seen within ~12 hours (a new or vanished one within one refresh)
  at ~30 s of requests per hour instead of ~6 minutes.
- details: ``{"symbol": "BTCUSD", "base_currency": "BTC", "quote_currency": "USD", "tick_size": 1e-8,
  "quote_increment": 0.01, "min_order_size": "0.00001", "status": "open", "wrap_enabled": false,
  "product_type": "spot", "contract_type": "vanilla", "contract_price_currency": "USD"}``. Gemini's
  names are not ours: its ``tick_size`` is "the number of decimal places in the base_currency" (the
  quantity step, our ``lot_size``) and ``quote_increment`` the price step (our ``tick_size``).
- ``product_type`` ``spot`` -> ``spot``; ``swap`` (a perpetual swap) -> ``perpetual``, settled in
  ``contract_price_currency`` (the collateral), sizes in base units (contract size 1); other types are
  left out. ``status`` ``open`` -> ``trading``; ``closed``, ``cancel_only``, ``post_only`` and
  ``limit_only`` are kept as Gemini says them (not ``trading``: ``all`` and globs skip them).
- An error is ``{"result": "error", "reason": ..., "message": ...}`` (a ValueError here); a details body
  whose fields are unusable leaves that symbol out, as every venue's parser does.

The instrument's ``symbol`` is the name the websocket rows carry (``GeminiDialect.normalise_symbol``);
``base``/``quote`` are Gemini's own currencies, so where the textual split of the native name guesses
wrong (``PAXGUSD`` reads ``PAX-GUSD``, ``USDGUSD`` reads ``USD-GUSD``) the row still says PAXG and USD.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from ..instruments import TRADING, Instrument, currency, listed, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

SYMBOLS_PATH = "/v1/symbols"
DETAILS_PATH = "/v1/symbols/details/"
#: details requests sent at once (Gemini queues five requests above its rate)
DETAILS_BURST = 5
#: seconds per :data:`DETAILS_BURST` details requests: one request per second on average
DETAILS_WINDOW_S = 5.0
#: known symbols whose details a refresh reads again (the longest unread first); new symbols always
DETAILS_REVERIFY = 30
_KINDS = {"spot": "spot", "swap": "perpetual"}
_NAME = re.compile(r"^[A-Za-z0-9]{2,40}$")


def _error(answer: Any) -> str | None:
    if isinstance(answer, dict) and answer.get("result") == "error":
        return f"{str(answer.get('reason'))[:60]}: {str(answer.get('message'))[:120]}"
    return None


def parse_symbols(body: str | bytes) -> list[str]:
    """Native symbols of a ``/v1/symbols`` answer (upper case). Names that are not plain alphanumeric
    (they go into a request path) are left out; a body that is not a list is a ValueError."""
    answer = orjson.loads(body)
    if not isinstance(answer, list):
        raise ValueError(f"symbols: {_error(answer) or 'not a list: ' + str(answer)[:120]}")
    out: dict[str, None] = {}
    for name in answer:
        if isinstance(name, str) and _NAME.match(name):
            out.setdefault(name.upper())
    return list(out)


def parse_details(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """The instrument of one ``/v1/symbols/details/{symbol}`` answer (none when its fields are unusable
    or its product type is not collected); an error answer or a body that is not an object is a
    ValueError."""
    item = orjson.loads(body)
    if not isinstance(item, dict) or _error(item):
        raise ValueError(f"symbol details: {_error(item) or 'not an object: ' + str(item)[:120]}")
    try:
        kind = _KINDS.get(item["product_type"])
        native = item["symbol"]
        if kind is None or not isinstance(native, str) or not _NAME.match(native):
            return []
        status = currency(item["status"]).lower()
        perpetual = kind == "perpetual"
        inst = listed(
            dialect,
            native.upper(),
            kind,
            currency(item["base_currency"]),
            currency(item["quote_currency"]),
            positive(item["quote_increment"]),
            positive(item["tick_size"]),
            TRADING if status == "open" else status,
            ts_recv,
            settle=currency(item["contract_price_currency"]) if perpetual else None,
            contract_size=1.0 if perpetual else None,
        )
    except (KeyError, TypeError, ValueError):
        return []
    return [inst]


class DetailsCache:
    """The instruments of each symbol's last details answer, and which symbols a fetch must ask again.

    :meth:`due` orders a listing's symbols for one fetch: every symbol never read (new listings), then
    the ``reverify`` known symbols read longest ago; :meth:`store` records an answer, :meth:`forget` a
    symbol whose details are gone (400/404), and :meth:`instruments` gives the listed symbols'
    instruments (those not read in this fetch from their last answer). Symbols no longer listed are
    dropped, so the instrument book sees them vanish.
    """

    def __init__(self, reverify: int = DETAILS_REVERIFY) -> None:
        self.reverify = reverify
        #: native -> (fetch number of the last answer, its instruments)
        self.known: dict[str, tuple[int, list[Instrument]]] = {}
        self.fetches = 0

    def due(self, listing: list[str]) -> list[str]:
        """The symbols of ``listing`` whose details this fetch reads, in request order."""
        self.fetches += 1
        listed = set(listing)
        for native in [n for n in self.known if n not in listed]:
            del self.known[native]
        new = [n for n in listing if n not in self.known]
        known = sorted((n for n in listing if n in self.known), key=lambda n: self.known[n][0])
        return new + known[: self.reverify]

    def store(self, native: str, instruments: list[Instrument]) -> None:
        """The instruments of ``native``'s details answer in this fetch."""
        self.known[native] = (self.fetches, instruments)

    def forget(self, native: str) -> None:
        """``native`` has no details (delisted since the list was read): left out of the instruments."""
        self.known.pop(native, None)

    def instruments(self, listing: list[str]) -> list[Instrument]:
        """Every listed symbol's instruments, from its latest details answer."""
        return [i for n in listing if n in self.known for i in self.known[n][1]]


def symbols_body(markets: dict[str, MarketModel]) -> list[str]:
    """A simulator's ``/v1/symbols`` answer for its markets."""
    return [native.lower() for native in markets]


def details_body(native: str, model: MarketModel, base: str, quote: str) -> dict[str, Any]:
    """A simulator's details answer for one of its markets (``base``/``quote`` split by the caller)."""
    perpetual = native.endswith("PERP")
    return {
        "symbol": native,
        "base_currency": base,
        "quote_currency": quote,
        "tick_size": float(model.size_str(1)),
        "quote_increment": model.tick,
        "min_order_size": model.size_str(1),
        "status": "open",
        "wrap_enabled": False,
        "product_type": "swap" if perpetual else "spot",
        "contract_type": "linear" if perpetual else "vanilla",
        "contract_price_currency": quote,
    }
