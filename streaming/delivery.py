"""What the broker-backed publishers (Kafka, Kinesis) share: one sender task, and delivery failures
that are latched when they happen and raised by the next ``publish`` or ``flush``."""

from __future__ import annotations

import asyncio

from streaming.base import Publisher


class DeliveryError(RuntimeError):
    """Records the broker did not accept (after retries, or rejected for good)."""


class SenderPublisher(Publisher):
    """A publisher whose messages leave through a background sender task.

    Subclasses set ``transport`` (for messages), start ``_sender``, call :meth:`_latch_failure` when
    rows are lost, and release their client in :meth:`_release`.
    """

    transport = "the broker"

    def __init__(self) -> None:
        self._sender: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._failed_rows = 0
        self._closed = False

    def _latch_failure(self, rows: int, exc: BaseException) -> None:
        """Counts rows that were not delivered; the first cause is reported."""
        self.stats.errors += 1
        self._failed_rows += rows
        if self._failure is None:
            self._failure = exc

    def _raise_failure(self) -> None:
        """Raises :class:`DeliveryError` once for the failures latched since the last raise."""
        if self._failure is not None:
            exc, rows = self._failure, self._failed_rows
            self._failure, self._failed_rows = None, 0
            raise DeliveryError(f"{rows} rows were not delivered to {self.transport}: {exc!r}") from exc

    def _raise_sender_stopped(self, pending: int) -> None:
        """Raises :class:`DeliveryError`: the sender task ended with ``pending`` messages not sent."""
        task = self._sender
        cause = None if task is None or not task.done() or task.cancelled() else task.exception()
        raise DeliveryError(
            f"the {self.transport} sender stopped with {pending} message(s) not sent: {cause!r}"
        ) from cause

    def _check_open(self) -> None:
        if self._sender is None or self._closed:
            raise RuntimeError(f"{type(self).__name__} is not started (or already closed)")

    async def _release(self) -> None:
        """Releases the client after the sender stopped."""

    async def close(self) -> None:
        """Flushes, then stops the sender and releases the client (even if the flush raised)."""
        if self._closed:
            return
        try:
            if self._sender is not None:
                await self.flush()
        finally:
            self._closed = True
            if self._sender is not None:
                self._sender.cancel()
                await asyncio.gather(self._sender, return_exceptions=True)
            await self._release()
