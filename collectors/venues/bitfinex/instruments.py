"""Instruments of Bitfinex: the last prices (``GET /v2/tickers?symbols=ALL``), then the exchange pairs
(``GET /v2/conf/pub:info:pair``) and the derivative pairs (``GET /v2/conf/pub:info:pair:futures``).

Sources (checked 2026-12-05): https://docs.bitfinex.com/reference/rest-public-conf (configuration
requests: ``pub:list:pair:exchange``, ``pub:list:pair:futures``, ``pub:info:pair``,
``pub:info:pair:futures``), https://docs.bitfinex.com/reference/rest-public-tickers (trading pair
ticker ``[SYMBOL, BID, BID_SIZE, ASK, ASK_SIZE, DAILY_CHANGE, DAILY_CHANGE_RELATIVE, LAST_PRICE, VOLUME,
HIGH, LOW]``; funding tickers start with ``f`` and are passed over),
https://docs.bitfinex.com/docs/introduction and
https://support.bitfinex.com/hc/en-us/articles/115000371105-How-is-precision-calculated-using-significant-digits-on-Bitfinex
(prices of every pair have five significant digits). Errors are ``["error", CODE, "message"]``.

``pub:info:pair`` answers ``[[[PAIR, [_, _, _, MIN_ORDER_SIZE, MAX_ORDER_SIZE, _, _, _, INITIAL_MARGIN,
MIN_MARGIN]], ...]]`` (one outer element per requested key; ``PAIR`` without the ``t``: ``BTCUSD``,
``AAVE:USD``, ``BTCF0:USTF0``). The order sizes are limits, not steps, and are not read; a pair listed
there trades (``trading``; a delisted pair leaves the list).

Tick size, decided: Bitfinex has no fixed tick. A price has five significant digits, so the step at a
price ``p`` is ``10**(floor(log10 p) - 4)`` (1 at 97,000; 0.00001 at 0.5). ``tick_size`` is that step at
the pair's last price when the instruments are fetched (the ticker's ``LAST_PRICE``, or the mid of its
bid and ask before a first trade; a pair with neither is left out until it has one). It changes when
the price crosses a power of ten, and the next fetch (hourly) writes the new step as a new row: a
reader rounding with the row in force is exact while the price stays within the decade it had at the
fetch. :func:`collectors.instruments.significant_increment` gives the step at any price.

Lot size: ``1e-8`` (Bitfinex amounts have eight decimals; not stated on the pages above: unconfirmed).
Derivative pairs (``tBTCF0:USTF0``) are perpetuals settled in their quote currency (``UST`` is
USDT), amounts in base units (contract size 1).

:meth:`BitfinexDialect.parse_instruments` reads the three bodies in that order (the fetch asks for the
tickers first): a tickers body only records the prices the pair bodies then use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ...instruments import TRADING, Instrument, build_all, listed, positive, significant_increment
from .client import normalise_pair

if TYPE_CHECKING:
    from ...base import ExchangeDialect
    from ...simulator import MarketModel

TICKERS_PATH = "/v2/tickers?symbols=ALL"
PAIRS_PATH = "/v2/conf/pub:info:pair"
FUTURES_PATH = "/v2/conf/pub:info:pair:futures"
#: significant digits of every Bitfinex price
PRICE_DIGITS = 5
#: amount step of every pair (eight decimals)
LOT_SIZE = 1e-8
_LAST, _BID, _ASK = 7, 1, 3


def _checked(body: str | bytes, what: str) -> list[Any]:
    answer = orjson.loads(body)
    if isinstance(answer, list) and answer[:1] == ["error"]:
        raise ValueError(f"{what}: error {str(answer[1:])[:120]}")
    if not isinstance(answer, list):
        raise ValueError(f"{what}: not a list: {str(answer)[:120]}")
    return answer


def is_tickers(body: str | bytes) -> bool:
    """True for a tickers answer (a list of ``[SYMBOL, numbers...]``), False for a configuration one."""
    answer = orjson.loads(body)
    return isinstance(answer, list) and any(
        isinstance(item, list) and item[:1] and isinstance(item[0], str) and len(item) > _LAST
        for item in answer
    )


def parse_tickers(body: str | bytes) -> dict[str, float]:
    """Native trading pair -> the price its tick is taken at (last price, else the bid/ask mid)."""
    prices: dict[str, float] = {}
    for item in _checked(body, "tickers"):
        if not isinstance(item, list) or len(item) <= _LAST or not isinstance(item[0], str):
            continue
        if not item[0].startswith("t"):
            continue  # funding tickers
        try:
            prices[item[0]] = positive(item[_LAST])
        except (TypeError, ValueError):
            try:
                prices[item[0]] = (positive(item[_BID]) + positive(item[_ASK])) / 2
            except (TypeError, ValueError):
                continue
    return prices


def parse_pairs(
    dialect: ExchangeDialect, body: str | bytes, ts_recv: int, prices: dict[str, float]
) -> list[Instrument]:
    """Instruments of a ``pub:info:pair`` or ``pub:info:pair:futures`` answer, ticks at ``prices``."""
    answer = _checked(body, "pair info")
    if len(answer) != 1 or not isinstance(answer[0], list):
        raise ValueError(f"pair info: expected one list of pairs: {str(answer)[:120]}")

    def build(item: list[Any]) -> Instrument:
        pair = item[0]
        if not isinstance(pair, str) or not isinstance(item[1], list):
            raise TypeError("not a [PAIR, [INFO...]] item")
        native = "t" + pair
        base, quote, *perp = normalise_pair(native).split("-")
        tick = significant_increment(prices[native], PRICE_DIGITS)
        if perp:
            return listed(dialect, native, "perpetual", base, quote, tick, LOT_SIZE, TRADING, ts_recv,
                          settle=quote, contract_size=1.0)  # fmt: skip
        return listed(dialect, native, "spot", base, quote, tick, LOT_SIZE, TRADING, ts_recv)

    return build_all(answer[0], build)


def tickers_body(markets: dict[str, MarketModel]) -> list[list[Any]]:
    """A simulator's tickers answer: its markets at their mid price."""
    out: list[list[Any]] = []
    for native, m in markets.items():
        (bid, bid_size), (ask, ask_size) = m.best()
        mid = float(m.price_str(m.mid))
        out.append([native, float(bid), float(bid_size), float(ask), float(ask_size), 0.0, 0.0, mid, 1000.0,
                    mid, mid])  # fmt: skip
    return out


def pairs_body(markets: dict[str, MarketModel], derivatives: bool) -> list[list[Any]]:
    """A simulator's ``pub:info:pair`` (or ``:futures``) answer for its spot (or perpetual) markets."""
    from .client import is_perpetual

    return [
        [[native[1:], [None, None, None, "0.0002", "2000.0", None, None, None, 0.2, 0.1]]
         for native in markets if is_perpetual(native) == derivatives]
    ]  # fmt: skip
