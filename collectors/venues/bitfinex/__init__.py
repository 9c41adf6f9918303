"""Bitfinex spot and perpetuals (exchange id ``bitfinex``): the client in :mod:`.client` (protocol notes and
documentation sources there), the loopback simulator in :mod:`.simulator`."""

from .client import BitfinexDialect, BitfinexNormaliser, book_checksum, js_number, normalise_pair

DIALECT_CLASS = BitfinexDialect

__all__ = [
    "DIALECT_CLASS",
    "BitfinexDialect",
    "BitfinexNormaliser",
    "book_checksum",
    "js_number",
    "normalise_pair",
]
