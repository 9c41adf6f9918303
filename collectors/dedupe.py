"""De-duplication of trades by the exchange's trade id.

Exchanges that replay recent trades on every subscribe (Coinbase ``market_trades``, Kraken ``trade``,
Bybit, ...) would put the same trade in the lake once per reconnect. :class:`RecentTradeIds` remembers
the most recent ids per symbol, in any arrival order (snapshots are often newest first), in bounded
memory. It works on opaque ids, so it also fits exchanges whose ids are not integers.
"""

from __future__ import annotations

from collections import deque

#: Ids remembered per symbol: far more than any exchange replays on subscribe (typically 50-1000).
DEFAULT_CAPACITY = 5_000


class RecentTradeIds:
    """The last ``capacity`` trade ids seen per symbol."""

    __slots__ = ("_ids", "_order", "capacity")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: dict[str, set[str]] = {}
        self._order: dict[str, deque[str]] = {}

    def seen(self, symbol: str, trade_id: str) -> bool:
        """True when ``trade_id`` was already seen for ``symbol``; otherwise remembers it and returns False."""
        ids = self._ids.get(symbol)
        if ids is None:
            ids = self._ids[symbol] = set()
            self._order[symbol] = deque()
        if trade_id in ids:
            return True
        order = self._order[symbol]
        ids.add(trade_id)
        order.append(trade_id)
        if len(order) > self.capacity:
            ids.discard(order.popleft())
        return False

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._ids.values())
