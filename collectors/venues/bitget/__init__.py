"""Bitget public websocket v2: ``bitget`` (spot) and ``bitget-futures`` (USDT-M perpetuals).

One protocol, two venues: :mod:`.client` (normaliser and dialect base), :mod:`.simulator`, and the
two registered modules :mod:`.spot` and :mod:`.futures` (each exporting ``DIALECT_CLASS``). This
module exports the spot dialect as ``DIALECT_CLASS``.

Documentation followed (checked 2026-12-05):
- connection rules: https://www.bitget.com/api-doc/common/websocket-intro
- spot book: https://www.bitget.com/api-doc/spot/websocket/public/Depth-Channel (also as
  https://www.bitget.com/api-doc/classic/spot/websocket/public/Depth-Channel, "Explanation of seq")
- futures book: https://www.bitget.com/api-doc/contract/websocket/public/Order-Book-Channel
- spot trades: https://www.bitget.com/api-doc/spot/websocket/public/Trades-Channel
- futures trades: https://www.bitget.com/api-doc/contract/websocket/public/New-Trades-Channel
- the ``pseq`` rule (restart with ``pseq`` 0) as written for Bitget's unified-account books:
  https://www.bitget.com/api-doc/uta/websocket/public/Order-Book-Channel
The book pages were read as stored copies of Bitget's own mirror domains, same paths (bitgetapp.com,
cnbitget.com, bitget.org, bitgetpro.site); the connection and trade pages from www.bitget.com itself.

Connection: ``wss://ws.bitget.com/v2/ws/public``. Subscribe with
``{"op":"subscribe","args":[{"instType":"SPOT"|"USDT-FUTURES","channel":C,"instId":"BTCUSDT"},...]}``
(acknowledged per argument with ``{"event":"subscribe","arg":{...}}``; refused with
``{"event":"error","code":..,"msg":..}``, recorded as an ``exchange_error`` event). Limits: the text
``ping`` every 30 s, answered ``pong`` (we send it every 25 s; Bitget closes a connection that sent no
ping for 2 minutes); at most 10 messages per second per connection (pings included), 240
subscription requests per hour per connection, 1000 channels per connection of which Bitget
recommends no more than 50 (``max_streams_per_connection`` = 50, so a connection's whole
subscription fits in one request), 100 connections and 300 connection attempts per 5 minutes per
IP. Bitget closes every connection after 24 hours: there is no dialect attribute for a connection's
age in this tree; ``ConnectionSettings.max_connection_age_s`` (rotation) must be set below 24 h for
Bitget by whoever configures the collector, otherwise the forced close is an ordinary reconnect
(books resync from a new snapshot; replayed trades are dropped by id).

Channels (every push is ``{"action":"snapshot"|"update","arg":{instType,channel,instId},"data":[...],"ts"}``):
- ``trade``: ``{ts, price, size, side, tradeId}``, ``side`` the taker side. The first push after a
  subscription is a ``snapshot`` of recent trades (newest first): those rows carry SNAPSHOT, and
  trades whose ``tradeId`` was already stored (a reconnect) are dropped and counted
  (``trades_replayed``), never stored twice. ``update`` pushes are live trades and always stored
  (the futures documentation's own example lists two trades under one placeholder ``tradeId``).
- ``books`` (all levels): a ``snapshot`` then ``update`` pushes; levels ``[price, size]``, size ``"0"``
  removes a level; ``ts`` is the book time. ``books1``/``books5``/``books15`` are whole snapshots of
  the top 1/5/15 levels every push; ``books5``/``books15`` are not used (``books`` holds the same
  levels, with sequence and checksum).
- best bid/offer: ``books1`` by default (a one-level book snapshot, 60 ms spot / 100 ms futures per
  the docs, carrying the book's ``seq``, so its rows can be compared with the rebuilt book at equal
  ``seq``); or ``ticker`` (``DialectOptions.extra["bbo_channel"]``), whose ``bidPr``/``bidSz``/
  ``askPr``/``askSz`` come with the 24 h statistics and no sequence (``seq`` null). ``books1`` is
  the default because it is the faster top-of-book stream and is tied to the book's sequence.

Book integrity (documented rules implemented here):
- ``seq`` increases with every book change ("incrementing except during symbol maintenance");
  ``pseq`` is the ``seq`` of the previous push. An update whose ``pseq`` differs from the ``seq`` of
  the last applied push is a ``gap``. ``pseq`` 0 is the documented restart after a release or
  service restart: accepted (counted in ``sequence_restarts``; the checksum still guards the book).
  An update whose ``seq`` is at or below the book's is a repeat or a sequence going backwards: a
  ``duplicate`` event, not applied; 50 of them in a row mean the book's own ``seq`` is wrong (a bad
  frame that passed validation) and count as a ``gap``. Pushes that carry ``seq`` but no ``pseq`` (the spot v2 example
  shows only ``seq``) are checked for order only; a lost update there is found by the checksum.
- checksum: CRC32 read as a signed 32-bit integer of the best 25 bids and asks interleaved
  ``bid1price:bid1size:ask1price:ask1size:...`` over the exact wire strings (a side that runs out
  stops contributing; :func:`collectors.checksum.book_crc32`, shared with OKX). Verified after every
  snapshot and update; a checksum of 0 or none counts as not sent (``checksums_unverified``).
- A gap or checksum failure breaks that instrument only: ``gap``/``checksum_mismatch`` event, book
  cleared, rows of the failing update flagged MAYBE_BAD_BOOK, and the connection sends
  ``unsubscribe`` + ``subscribe`` of that book alone; the new snapshot brings a ``resync`` and
  ``epoch + 1``. Updates before it are counted (``updates_skipped``); if the snapshot does not come
  within 1000 updates the request is repeated (``resync_retry``). Each resync costs two of the
  240 subscription requests per hour.

Derivatives channels (issue 15, ``bitget-futures`` only; checked 2026-12-05):
https://www.bitget.com/api-doc/contract/websocket/public/Tickers-Channel, read through a stored copy of
the same path on a mirror domain (https://sanqianwenhua.xyz/api-doc/contract/websocket/public/Tickers-Channel:
"When there is a change (deal, buy, sell, issue): 100ms to 300ms"; its push example is a test), which
confirms the field names below (earlier only seen in public test fixtures); the REST ticker
https://www.bitget.com/api-doc/contract/market/Get-Ticker states ``holdingAmount`` in base coin:
- ``funding``, ``mark``, ``open_interest`` ride the ``ticker`` channel (one subscription for all three,
  shared with bbo when ``bbo_channel`` is ``ticker``; otherwise its bid/ask add no second bbo
  stream). Each entry gives, at its ``ts`` (ms, a decimal string): a ``mark_price`` row (``markPrice``,
  ``indexPrice``), a ``funding`` row (``fundingRate``, next funding time ``nextFundingTime``, ms as a
  decimal string; no predicted rate) and an ``open_interest`` row (``holdingAmount``, base coin, no
  value); a field that is absent or empty makes no row. v1 ``mc`` tickers (the 2022 recording) carry
  the same under ``systemTime``, ``capitalRate``, ``nextSettleTime`` and ``holding`` and are read the
  same way.
- ``liquidations`` (``bitget-futures``): the v2 public websocket this dialect speaks has no
  liquidation channel; Bitget's unified-account (UTA, v3) public websocket has one
  (https://www.bitget.com/api-doc/uta/websocket/public/Liquidation-Channel, checked 2026-12-05 through
  two stored copies: https://www.bitget.live/api-doc/uta/websocket/public/Liquidation-Channel and a
  markdown copy of the UTA websocket pages citing that address). It rides its own connections
  (:meth:`BitgetDialect.channel_groups`) on ``wss://ws.bitget.com/v3/ws/public`` (the v3 public
  endpoint, as peers connect to it; same text ``ping``/``pong``), subscribed once per connection with
  ``{"op":"subscribe","args":[{"instType":"usdt-futures","topic":"liquidation"}]}`` (every symbol of
  the product type: records of symbols the connection does not carry are dropped and counted in
  ``liquidations_of_other_symbols``, so several such connections never store a record twice). Pushes
  are ``{"data":[{symbol, side, price, amount, ts}],"arg":{instType, topic},"action","ts"}`` with
  strings: ``side`` is the *position* side ("``buy`` long position liquidation, ``sell`` short position
  liquidation"), so the row's taker side is the other one (``buy`` -> ``sell``); ``price`` the
  liquidation price; ``amount`` the "liquidation amount, unit: quote coin", so the row's size (the
  unit of the venue's trades: base coin) is ``amount / price``; ``ts`` (ms) the liquidation time;
  Bitget gives no id. Not every liquidation: one copy of the page says each 1 s push keeps only the
  largest long and the largest short liquidation per symbol, the other that a push comes every 20 s
  or 10,000 records with all of them; rows are per record either way.

Retired v1 captures (``wss://ws.bitget.com/spot/v1/stream`` and ``/mix/v1/stream``, as in
``../shared/samples/bitget``, 2022) replay through the same normalisers: ``instType`` ``sp``/``mc``;
trades are arrays ``[ts, price, size, side]`` without trade id (the lake needs one: rows get
``v1:<ts>:<price>:<size>:<side>`` from the wire strings, which is not unique, so v1 trades are never
de-duplicated across reconnects); books carry the same checksum but no ``seq``/``pseq``
(only the checksum proves continuity); v1 tickers (``bestBid``/``bestAsk`` without sizes) and
``candle*`` pushes are counted in ``ignored_pushes`` and give no rows.
"""

from __future__ import annotations

from .client import BitgetDialect, BitgetNormaliser, bitget_checksum
from .spot import DIALECT_CLASS, BitgetSpotDialect, BitgetSpotNormaliser

__all__ = [
    "DIALECT_CLASS",
    "BitgetDialect",
    "BitgetNormaliser",
    "BitgetSpotDialect",
    "BitgetSpotNormaliser",
    "bitget_checksum",
]
