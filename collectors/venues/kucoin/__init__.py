"""KuCoin: spot (exchange id ``kucoin``, this package's ``DIALECT_CLASS``) and USDT-margined futures
(``kucoin-futures``, :mod:`collectors.venues.kucoin.futures`).

``client`` holds what both share (token flow, ping, subscribe, control messages, the level-2 sequence
rule); ``spot`` and ``futures`` their payloads and symbols; ``simulator`` the loopback side of both.
"""

from .spot import KucoinSpotDialect

DIALECT_CLASS = KucoinSpotDialect
