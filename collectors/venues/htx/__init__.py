"""HTX (formerly Huobi): spot (``htx``, this package's ``DIALECT_CLASS``) and USDT-margined swaps
(``htx-swap``, :mod:`.swap`). Shared client code in :mod:`.common`, both simulators in :mod:`.simulator`."""

from __future__ import annotations

from .spot import DIALECT_CLASS, HtxSpotDialect, HtxSpotNormaliser

__all__ = ["DIALECT_CLASS", "HtxSpotDialect", "HtxSpotNormaliser"]
