"""The quality HTTP server: ``/metrics`` (Prometheus), ``/api/quality`` (JSON) and ``/`` (dashboard).

Bound to 127.0.0.1 unless told otherwise. By default it also drives the tracker: one
:meth:`~quality.live.QualityTracker.snapshot` per second, whose ``quality`` rows go to ``on_rows``
(a publisher of the ``quality`` dataset, for instance). Pass ``drive=False`` when something else
already calls ``snapshot`` (exactly one caller, or the windows would be split between two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from .live import QualityTracker
from .metrics import tracker_registry

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

RowsCallback = Callable[[list[tuple[Any, ...]]], Awaitable[None] | None]


#: Connections idle this long (no request after a response) are closed.
IDLE_TIMEOUT_S = 15.0


class PortInUseError(OSError):
    """A server could not bind its port (in use, or not allowed); the message says what to do."""


def port_message(what: str, host: str, port: int, exc: OSError, flag: str = "--port") -> str:
    """One line naming the address that failed and pointing to the port flag."""
    return (
        f"cannot serve {what} on {host}:{port}: {exc.strerror or exc}; "
        f"another process may be using it: choose another with {flag} (0 picks a free one)"
    )


async def _nosniff(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Content-Type-Options"] = "nosniff"


def harden(app: web.Application) -> web.Application:
    """Every response says ``X-Content-Type-Options: nosniff`` (browsers never guess content types)."""
    app.on_response_prepare.append(_nosniff)
    return app


def app_runner(app: web.Application, idle_timeout_s: float = IDLE_TIMEOUT_S) -> web.AppRunner:
    """An AppRunner with ticktape's timeouts.

    aiohttp's keep-alive timer runs from the moment a connection opens and closes it whenever no
    complete request is being handled: it is both the idle timeout and the header-read timeout (a
    client trickling a request's headers is cut off after ``idle_timeout_s``). Request lines and
    headers are bounded in size by aiohttp (8 KiB each).
    """
    return web.AppRunner(harden(app), access_log=None, keepalive_timeout=idle_timeout_s)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


class QualityServer:
    """Serves one tracker over HTTP. ``await start()``, then ``await stop()``.

    ``registry`` lets other parts of the process (publisher, sink) put their metrics on the same
    ``/metrics``; the tracker's collector is added to it. ``health`` returns what is wrong with the
    process right now (e.g. :meth:`collectors.connection.Collector.problems`): ``/healthz`` answers
    503 listing it, 200 ``ok`` when it is empty.
    """

    def __init__(
        self,
        tracker: QualityTracker,
        host: str = "127.0.0.1",
        port: int = 8321,
        *,
        drive: bool = True,
        on_rows: RowsCallback | None = None,
        interval_s: float = 1.0,
        registry: CollectorRegistry | None = None,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        health: Callable[[], list[str]] | None = None,
    ) -> None:
        self.tracker = tracker
        self.idle_timeout_s = idle_timeout_s
        self.health = health
        self.host = host
        self.port = port
        self.drive = drive
        self.on_rows = on_rows
        self.interval_s = interval_s
        self.registry = tracker_registry(tracker, registry)
        self._runner: web.AppRunner | None = None
        self._driver: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        """The aiohttp application (routes only; no background tasks)."""
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/quality", self._api)
        app.router.add_get("/api/quality/{exchange}", self._api_one)
        app.router.add_get("/healthz", self._health)
        app.router.add_static("/static/", STATIC_DIR)
        return app

    async def start(self) -> None:
        """Binds and starts serving (and driving the tracker unless ``drive=False``)."""
        runner = app_runner(self.app(), self.idle_timeout_s)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise PortInUseError(exc.errno, port_message("quality", self.host, self.port, exc)) from exc
        self._runner = runner
        # Port 0 asks the OS for a free port: report the real one.
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        if self.drive:
            self._driver = asyncio.create_task(self.tracker.run(self.on_rows, self.interval_s))
        log.info("quality dashboard on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        """Stops driving and serving."""
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
            self._driver = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{self.host}:{self.port}"

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _api(self, request: web.Request) -> web.Response:
        history = request.query.get("history", "") in ("1", "true", "yes")
        return _json(self.tracker.api(history=history))

    async def _api_one(self, request: web.Request) -> web.Response:
        name = request.match_info["exchange"]
        for item in self.tracker.api(history=True):
            if item["exchange"] == name:
                return _json(item)
        return _json({"error": f"unknown exchange {name!r}"}, status=404)

    async def _health(self, request: web.Request) -> web.Response:
        problems = self.health() if self.health is not None else []
        if problems:
            return web.Response(text="unhealthy\n" + "\n".join(problems) + "\n", status=503)
        return web.Response(text="ok\n")
