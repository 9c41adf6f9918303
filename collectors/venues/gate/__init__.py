"""Gate (exchange ids ``gate`` and ``gate-futures``): websocket API v4, spot and USDT-margined perpetuals.

Both venues speak one protocol (``{"time","channel","event","payload"}`` requests, ``{"channel","event",
"result"}`` pushes) and keep their books with the same rule, so the shared part is written once:
- :mod:`.common`: frame routing, REST-snapshot book sync, book ticker, the dialect skeleton;
- :mod:`.spot`: ``gate`` (``spot.*`` channels, list levels, one trade per push);
- :mod:`.futures`: ``gate-futures`` (``futures.*`` channels, ``{"p","s"}`` levels in contracts, trade lists
  with signed sizes);
- :mod:`.simulator`: the loopback server of both.

``collectors.registry`` points ``gate`` at :mod:`.spot` and ``gate-futures`` at :mod:`.futures`, each
exporting ``DIALECT_CLASS``.
"""
