"""Instruments of Upbit: ``GET /v1/market/all?is_details=true`` (the markets), then
``GET /v1/orderbook/instruments?markets=...`` (each market's tick), both public.

Sources (checked 2026-12-05): https://docs.upbit.com/reference/list-trading-pairs (market list:
``market``, ``korean_name``, ``english_name``, ``market_event`` with ``warning`` and ``caution``
flags; ``market_warning`` was removed on 2024-11-20,
https://docs.upbit.com/kr/changelog/%EC%A0%90%EA%B2%80-%EC%84%9C%EB%B2%84-%EC%A0%90%EA%B2%80-%EC%95%88%EB%82%B4-%EC%99%84%EB%A3%8C),
https://docs.upbit.com/kr/reference/list-orderbook-instruments (since 2025-07-31, v1.5.9: per market
``market``, ``quote_currency``, ``tick_size`` (string), ``supported_levels``; ``markets`` is a
comma-separated list; 10 requests per second per IP, shared with the orderbook group),
https://docs.upbit.com/kr/changelog/orderbook-instruments (orders off the tick are refused:
``invalid_price_bid``/``invalid_price_ask``) and https://docs.upbit.com/kr/reference/rate-limits.

Tick size, decided: Upbit's KRW (and USDT) ticks depend on the price level (the KRW table of
https://docs.upbit.com/kr/docs/krw-market-info: 1,000 KRW at 1,000,000 KRW and above down to 0.00000001
for the smallest prices, with exceptions per coin), and Upbit publishes, per market, the tick in force
at the market's current price: ``tick_size`` here is that figure, exactly as Upbit says it. When the
price moves into another band the venue's tick changes; the next fetch (hourly) writes a new
instruments row with the new tick, so a reader rounding with the row in force at a time is exact while
the price stayed in the band it had at the fetch (a band boundary crossed within the hour is not).
BTC-quoted markets have one tick (0.00000001) at every price.

Lot size: ``1e-8`` for every market. Upbit publishes no quantity step; order and trade volumes carry at
most eight decimals (the shared 2021 recording: no trade volume with more). Unconfirmed by a document.

Status: every listed market trades (``trading``); ``market_event.warning`` (investment warning) and the
``caution`` flags are designations, not a halt, and a delisted market leaves the list (the instruments
then write it once as ``delisted``). Markets quoted in a currency the collector does not read (not KRW,
BTC or USDT) are left out, as are markets the tick answer does not mention.

Requests: one for the list, then one tick request per :data:`MARKETS_PER_REQUEST` markets (about seven
for Upbit's ~650 markets); Upbit documents no maximum for ``markets``, the batch keeps URLs short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..events import ParseError
from ..instruments import TRADING, Instrument, build_all, currency, listed, positive

if TYPE_CHECKING:
    from ..base import ExchangeDialect
    from ..simulator import MarketModel

MARKETS_PATH = "/v1/market/all?is_details=true"
TICKS_PATH = "/v1/orderbook/instruments"
#: markets per tick request
MARKETS_PER_REQUEST = 100
#: quantity step of every market (eight decimals)
LOT_SIZE = 1e-8


def _error(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        return f"{str(error.get('name'))[:60]}: {str(error.get('message'))[:120]}"
    return f"not a list: {str(answer)[:120]}"


def parse_markets(dialect: ExchangeDialect, body: str | bytes) -> list[str]:
    """Market codes of a ``/v1/market/all`` answer that the collector can name (``KRW-BTC``...)."""
    answer = orjson.loads(body)
    if not isinstance(answer, list):
        raise ValueError(f"market/all: {_error(answer)}")
    out: dict[str, None] = {}
    for item in answer:
        code = item.get("market") if isinstance(item, dict) else None
        if not isinstance(code, str):
            continue
        try:
            dialect.normalise_symbol(code)
        except ParseError:
            continue
        out.setdefault(code)
    return list(out)


def parse_ticks(dialect: ExchangeDialect, body: str | bytes, ts_recv: int) -> list[Instrument]:
    """Instruments of a ``/v1/orderbook/instruments`` answer (one per market it lists)."""
    answer = orjson.loads(body)
    if not isinstance(answer, list):
        raise ValueError(f"orderbook/instruments: {_error(answer)}")

    def build(item: dict[str, Any]) -> Instrument:
        code = item["market"]
        if not isinstance(code, str):
            raise TypeError("market is not a string")
        quote, _, base = code.partition("-")
        if currency(item["quote_currency"]) != quote:
            raise ValueError(f"{code}: quote currency {item['quote_currency']!r}")
        return listed(
            dialect, code, "spot", base, quote, positive(item["tick_size"]), LOT_SIZE, TRADING, ts_recv
        )

    return build_all(answer, build)


def ticks_paths(codes: list[str]) -> list[str]:
    """The tick requests for ``codes``, :data:`MARKETS_PER_REQUEST` markets each."""
    return [
        f"{TICKS_PATH}?markets={','.join(codes[i : i + MARKETS_PER_REQUEST])}"
        for i in range(0, len(codes), MARKETS_PER_REQUEST)
    ]


def markets_body(markets: dict[str, MarketModel]) -> list[dict[str, Any]]:
    """A simulator's ``market/all?is_details=true`` answer for its markets."""
    caution = {
        "PRICE_FLUCTUATIONS": False,
        "TRADING_VOLUME_SOARING": False,
        "DEPOSIT_AMOUNT_SOARING": False,
        "GLOBAL_PRICE_DIFFERENCES": False,
        "CONCENTRATION_OF_SMALL_ACCOUNTS": False,
    }
    return [
        {
            "market": code,
            "korean_name": code.partition("-")[2],
            "english_name": code.partition("-")[2],
            "market_event": {"warning": False, "caution": caution},
        }
        for code in markets
    ]


def ticks_body(markets: dict[str, MarketModel], codes: list[str]) -> list[dict[str, Any]]:
    """A simulator's ``orderbook/instruments`` answer for the listed ones of ``codes``."""
    out = []
    for code in codes:
        model = markets.get(code)
        if model is not None:
            tick = f"{model.tick:.{model.price_decimals}f}"
            out.append(
                {
                    "market": code,
                    "quote_currency": code.partition("-")[0],
                    "tick_size": tick,
                    "supported_levels": ["0"],
                }
            )
    return out
