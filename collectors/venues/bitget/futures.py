"""Bitget USDT-M perpetual futures, public websocket v2 (exchange id ``bitget-futures``):
``instType`` ``USDT-FUTURES`` (``mc`` in the retired v1 captures), ``BTCUSDT`` -> ``BTC-USDT-PERP``.
Sizes are quantities of the base coin, as Bitget's futures pushes give them. The protocol and its rules are in :mod:`collectors.venues.bitget`."""

from __future__ import annotations

from typing import ClassVar

from ...base import CHANNELS
from .client import TICKER_CHANNELS, BitgetDialect, BitgetNormaliser


class BitgetFuturesNormaliser(BitgetNormaliser):
    """Bitget USDT-M futures frames -> records."""

    exchange: ClassVar[str] = "bitget-futures"
    inst_types: ClassVar[frozenset[str]] = frozenset({"USDT-FUTURES", "mc"})
    symbol_suffix: ClassVar[str] = "-PERP"
    derivatives: ClassVar[bool] = True
    liquidation_inst_type: ClassVar[str | None] = "usdt-futures"


class BitgetFuturesDialect(BitgetDialect):
    """Bitget USDT-M futures v2."""

    exchange_id: ClassVar[str] = "bitget-futures"
    inst_type: ClassVar[str] = "USDT-FUTURES"
    normaliser_class: ClassVar[type[BitgetNormaliser]] = BitgetFuturesNormaliser
    #: mark, funding and open interest from ``ticker``; liquidations from the v3 ``liquidation`` topic
    channels: ClassVar[tuple[str, ...]] = (*CHANNELS, *TICKER_CHANNELS, "liquidations")
    symbol_suffix: ClassVar[str] = "-PERP"


DIALECT_CLASS = BitgetFuturesDialect
