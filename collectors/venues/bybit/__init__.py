"""Bybit v5 public websockets (exchange ids ``bybit`` and ``bybit-spot``): one protocol, written once.

- :mod:`.common`: topics, book rules, derivatives channels and the normaliser (the protocol's documentation);
- :mod:`.linear`: ``bybit``, linear perpetuals (``/v5/public/linear``);
- :mod:`.spot`: ``bybit-spot`` (``/v5/public/spot``), subclassing the linear dialect;
- :mod:`.simulator`: the loopback server of both;
- :mod:`.instruments`: ``/v5/market/instruments-info`` (pages, parsing, the simulator's body).

``collectors.registry`` points ``bybit`` at :mod:`.linear` and ``bybit-spot`` at :mod:`.spot`, each
exporting ``DIALECT_CLASS``.
"""
