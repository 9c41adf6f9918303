"""Reconnect pacing and the per-exchange REST request budget, shared by every connection."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter (delay uniform in ``[0, min(cap, base * 2**n)]``).

    The attempt counter resets once a connection has stayed healthy for ``healthy_after_s``, so a
    connection that drops once a day reconnects at once, while a reconnect storm slows itself down.
    """

    base_s: float = 0.5
    cap_s: float = 30.0
    healthy_after_s: float = 30.0
    attempts: int = 0
    rng: random.Random | None = None

    def next_delay(self) -> float:
        """The delay before the next attempt (and counts the attempt)."""
        ceiling = min(self.cap_s, self.base_s * (2**self.attempts))
        self.attempts = min(self.attempts + 1, 30)
        return (self.rng or random).uniform(0.0, ceiling)

    def connected_for(self, seconds: float) -> None:
        """Reports how long the last connection stayed up; a healthy one resets the counter."""
        if seconds >= self.healthy_after_s:
            self.attempts = 0


class RestBudget:
    """A request-weight budget per exchange (e.g. Binance's 6000 weight per minute per IP).

    ``acquire(weight)`` waits until the weight fits in the sliding window and no ban/back-off
    (``Retry-After`` after a 429 or 418) is in force. Keeps a safety margin below the exchange limit.
    """

    def __init__(self, weight_per_window: int = 6000, window_s: float = 60.0, safety: float = 0.5) -> None:
        self.limit = max(1, int(weight_per_window * safety))
        self.window_s = window_s
        self._spent: deque[tuple[float, int]] = deque()
        self._used = 0
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.waits = 0
        self.rejections = 0
        self.max_used = 0

    def used(self, now: float | None = None) -> int:
        """Weight spent within the current window."""
        now = time.monotonic() if now is None else now
        while self._spent and self._spent[0][0] <= now - self.window_s:
            self._used -= self._spent.popleft()[1]
        return self._used

    async def acquire(self, weight: int) -> None:
        """Waits until ``weight`` may be spent, then spends it."""
        weight = min(weight, self.limit)
        async with self._lock:  # one waiter at a time keeps the order fair
            while True:
                now = time.monotonic()
                if now < self._blocked_until:
                    self.waits += 1
                    await asyncio.sleep(self._blocked_until - now)
                    continue
                if self.used(now) + weight <= self.limit:
                    self._spent.append((now, weight))
                    self._used += weight
                    self.max_used = max(self.max_used, self._used)
                    return
                self.waits += 1
                await asyncio.sleep(max(0.01, self._spent[0][0] + self.window_s - now))

    def back_off(self, retry_after_s: float) -> None:
        """Blocks every request for ``retry_after_s`` (after a 429/418 from the exchange)."""
        self.rejections += 1
        self._blocked_until = max(self._blocked_until, time.monotonic() + max(0.0, retry_after_s))
