"""Bitget spot, public websocket v2 (exchange id ``bitget``): ``instType`` ``SPOT``, ``BTCUSDT`` ->
``BTC-USDT``. The protocol and its rules are in :mod:`collectors.venues.bitget`."""

from __future__ import annotations

from typing import ClassVar

from .client import BitgetDialect, BitgetNormaliser


class BitgetSpotNormaliser(BitgetNormaliser):
    """Bitget spot frames -> records."""

    exchange: ClassVar[str] = "bitget"
    inst_types: ClassVar[frozenset[str]] = frozenset({"SPOT", "sp"})
    symbol_suffix: ClassVar[str] = ""


class BitgetSpotDialect(BitgetDialect):
    """Bitget spot v2."""

    exchange_id: ClassVar[str] = "bitget"
    inst_type: ClassVar[str] = "SPOT"
    normaliser_class: ClassVar[type[BitgetNormaliser]] = BitgetSpotNormaliser
    symbol_suffix: ClassVar[str] = ""


DIALECT_CLASS = BitgetSpotDialect
