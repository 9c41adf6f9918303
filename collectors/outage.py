"""An outage of one collector's network path, for tests and ``ticktape demo --replicas``.

:class:`OutageProxy` is a loopback TCP relay in front of a simulator (websocket and REST share its
port). :meth:`OutageProxy.outage` cuts every connection through it and refuses new ones for a while:
what one replica in one availability zone sees when its link fails, while another replica, connected
through its own proxy (or directly), keeps receiving. The simulator's own faults
(``ExchangeSimulator.disconnect_all``, ``Faults.silent``) hit every client at once, so they cannot
stage outages of one replica at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class OutageProxy:
    """Relays ``127.0.0.1:<port>`` to ``target_host:target_port``; :meth:`outage` cuts it for a while."""

    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.outages = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._down_until = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def ws_url(self) -> str:
        """The websocket base URL through the proxy."""
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        """The REST base URL through the proxy."""
        return f"http://{self.host}:{self.port}"

    @property
    def down(self) -> bool:
        """True while an outage lasts."""
        return asyncio.get_running_loop().time() < self._down_until

    async def start(self) -> None:
        """Binds the relay on a free loopback port."""
        self._server = await asyncio.start_server(self._client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def outage(self, seconds: float) -> None:
        """Closes every relayed connection now and refuses new ones for ``seconds`` (the port stops
        listening: a connection attempt is refused, as when a link is down)."""
        self.outages += 1
        loop = asyncio.get_running_loop()
        self._down_until = loop.time() + seconds
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        task = asyncio.create_task(self._reopen(seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reopen(self, after_s: float) -> None:
        await asyncio.sleep(after_s)
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)

    async def stop(self) -> None:
        """Closes the relay and every connection through it."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError as exc:
            log.warning("outage proxy: upstream %s:%d unreachable: %s", *self.target, exc)
            writer.close()
            return
        self._writers.update((writer, up_writer))
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
