"""Pacing: the venues' own limits on opening connections and sending messages, enforced for every venue.

Each dialect declares its :class:`VenueLimits` (``ExchangeDialect.limits``): how many connections may be
opened per window, how many messages a client may send per second (per connection or per IP), how many
subscriptions fit in one message, and how many subscribe requests one connection may make per hour.
The connection layer asks a :class:`Pacer` before every connect (first connects, reconnect storms,
rotations) and before every frame it sends (subscribe bursts, resubscriptions, application pings), and
the pacer waits as long as the limit requires. Time spent waiting is counted (:attr:`Pacer.waited_s`,
:attr:`Pacer.waits`) and exported with the connection stats, so an operator sees when a venue's limits
slow a start-up or a reconnect storm down.

The simulators enforce the same :class:`VenueLimits` (``collectors.simulator``), closing or refusing
as the real venue does, so a test through a simulator proves the client stays within them.

A pacer is per collector (one exchange in one process). Limits that a venue counts per IP are only
respected across processes when each process collects a different venue (the deployment's groups).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class VenueLimits:
    """A venue's documented limits on what a client opens and sends (None: the venue documents none).

    ``safety`` scales every rate (0.8 keeps 20 % below the documented figure) so that clock skew
    between client and venue never tips a burst over the edge; the simulators enforce the full figure.
    """

    #: connection attempts allowed per ``connection_window_s`` (per IP)
    connections_per_window: int | None = None
    connection_window_s: float = 1.0
    #: messages a client may send per second
    messages_per_second: float | None = None
    #: True when ``messages_per_second`` counts all connections of an IP, False when per connection
    messages_per_ip: bool = False
    #: subscriptions (topics/streams/args) one subscribe message may carry
    subscriptions_per_message: int | None = None
    #: subscribe/unsubscribe requests one connection may send per hour
    subscribe_requests_per_hour: int | None = None
    safety: float = 0.8

    def scaled(self, count: int | float) -> int:
        """A documented count scaled by :attr:`safety` (at least 1)."""
        return max(1, int(count * self.safety))


class RateWindow:
    """At most ``limit`` events in any sliding window of ``window_s`` seconds.

    :meth:`acquire` waits until one more event fits, records it and returns the seconds it waited.
    Waiters are served in arrival order. An event can be moved later with :meth:`touch` (a
    connection counts at the venue when its handshake arrives, which is after the slot was taken:
    re-stamping it then keeps the client's window at least as strict as the venue's).
    """

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"a rate window needs limit >= 1 and window_s > 0, not {limit}/{window_s}")
        self.limit = limit
        self.window_s = window_s
        self._times: deque[list[float]] = deque()
        self._lock = asyncio.Lock()
        self.last_slot: list[float] = [0.0]

    def _expire(self, now: float) -> None:
        while self._times and self._times[0][0] <= now - self.window_s:
            self._times.popleft()

    async def acquire(self) -> float:
        """Waits for room in the window, takes it, and returns how long it waited (seconds).

        The slot taken is :attr:`last_slot` until the next acquire (see :meth:`touch`)."""
        started = time.monotonic()
        async with self._lock:
            while True:
                now = time.monotonic()
                self._expire(now)
                if len(self._times) < self.limit:
                    self.last_slot = [now]
                    self._times.append(self.last_slot)
                    return now - started
                oldest = min(slot[0] for slot in self._times)
                await asyncio.sleep(max(0.001, oldest + self.window_s - now))

    @staticmethod
    def touch(slot: list[float]) -> None:
        """Re-stamps a taken slot with the current time (it then leaves the window later)."""
        slot[0] = max(slot[0], time.monotonic())


class Pacer:
    """Enforces one venue's :class:`VenueLimits` for one collector, and counts the time it waited."""

    def __init__(self, limits: VenueLimits, enabled: bool = True) -> None:
        self.limits = limits
        self.enabled = enabled
        self.waited_s = 0.0
        self.waits = 0
        #: waited seconds by what was paced: "connect", "message", "subscribe"
        self.waited_by: dict[str, float] = {"connect": 0.0, "message": 0.0, "subscribe": 0.0}
        self._connects = (
            RateWindow(limits.scaled(limits.connections_per_window), limits.connection_window_s)
            if limits.connections_per_window
            else None
        )
        self._ip_messages = (
            self._message_window() if limits.messages_per_second and limits.messages_per_ip else None
        )

    def _message_window(self) -> RateWindow | None:
        rate = self.limits.messages_per_second
        if not rate:
            return None
        # Evenly spaced, one message per 1/(rate x safety) s, not bursts of the whole second's count:
        # a burst that the host delays (a loaded event loop) reaches the venue together with the next
        # second's burst and breaks its window; spaced messages keep their margin one by one.
        return RateWindow(1, 1.0 / (rate * self.limits.safety))

    def connection_windows(self) -> ConnectionPacing:
        """The per-connection part of the pacing (messages per connection, subscribe requests per hour)."""
        per_conn = None if self.limits.messages_per_ip else self._message_window()
        hourly = (
            RateWindow(self.limits.scaled(self.limits.subscribe_requests_per_hour), 3600.0)
            if self.limits.subscribe_requests_per_hour
            else None
        )
        return ConnectionPacing(self, per_conn, hourly)

    def _count(self, kind: str, waited: float) -> float:
        if waited > 0.0005:
            self.waits += 1
            self.waited_s += waited
            self.waited_by[kind] += waited
        return waited

    async def connect(self) -> tuple[float, list[float] | None]:
        """Waits until one more connection may be opened; returns the seconds waited and the slot to
        :meth:`opened` once the handshake is done (or failed)."""
        if not self.enabled or self._connects is None:
            return 0.0, None
        waited = self._count("connect", await self._connects.acquire())
        return waited, self._connects.last_slot

    @staticmethod
    def opened(slot: list[float] | None) -> None:
        """The connection of ``slot`` reached the venue now: it counts from now on."""
        if slot is not None:
            RateWindow.touch(slot)


class ConnectionPacing:
    """The message windows of one connection (shared IP-wide windows come from the :class:`Pacer`)."""

    def __init__(self, pacer: Pacer, messages: RateWindow | None, subscribes: RateWindow | None) -> None:
        self.pacer = pacer
        self._messages = messages
        self._subscribes = subscribes

    async def message(self, subscribe: bool = False) -> float:
        """Waits until one more message may be sent on this connection; returns the seconds waited.

        ``subscribe`` marks subscribe/unsubscribe requests, which some venues also count per hour.
        """
        pacer = self.pacer
        if not pacer.enabled:
            return 0.0
        waited = 0.0
        if subscribe and self._subscribes is not None:
            waited += pacer._count("subscribe", await self._subscribes.acquire())
        for window in (self._messages, pacer._ip_messages):
            if window is not None:
                waited += pacer._count("message", await window.acquire())
        return waited
