"""What every exchange module provides: a :class:`Normaliser` (frames -> records) and an
:class:`ExchangeDialect` (endpoints, subscriptions, REST snapshots, and the simulator side).

The normaliser is deterministic: given the same frames (including injected snapshot frames and
disconnect markers) it produces the same records, which is what makes capture-then-replay equal to
the live run. Everything that touches the network lives in the dialect and in
:mod:`collectors.connection`, never in the normaliser.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from schemas import Flags, RecordBuffer

from .events import ParseError, emit_event, frame_text_for_event

if TYPE_CHECKING:
    import aiohttp

    from .simulator import ExchangeSimulator, SimulatorConfig

#: Latency above which a record is OUTDATED, by default (DESIGN.md, "Quality").
DEFAULT_OUTDATED_CUTOFF_NS = 2_500_000_000
#: Frames larger than this are rejected as parse errors (websocket max size is set above it).
DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024

CHANNELS: tuple[str, ...] = ("trades", "book", "bbo")


class TimeFlagger:
    """Per-record time flags (OUTDATED, NEG_LATENCY) from raw latency ``ts_recv - ts_exchange``.

    Deterministic given the frames, so a replay sets exactly the flags the live run set.
    """

    __slots__ = ("outdated_cutoff_ns",)

    def __init__(self, outdated_cutoff_ns: int = DEFAULT_OUTDATED_CUTOFF_NS) -> None:
        self.outdated_cutoff_ns = outdated_cutoff_ns

    def flags(self, ts_exchange: int | None, ts_recv: int) -> int:
        """Flags for a record with these timestamps."""
        if ts_exchange is None:
            return 0
        latency = ts_recv - ts_exchange
        if latency < 0:
            return int(Flags.NEG_LATENCY)
        if latency > self.outdated_cutoff_ns:
            return int(Flags.OUTDATED)
        return 0


class Normaliser(abc.ABC):
    """Turns one connection's frames into records. One instance per connection (or replay).

    Subclasses implement :meth:`handle`. Any :class:`ParseError`, ``KeyError``, ``TypeError``,
    ``ValueError`` or ``IndexError`` raised there becomes a ``parse_error`` feed event carrying the
    frame; the normaliser keeps going, so one bad frame never stops the other symbols.
    """

    exchange: ClassVar[str]

    def __init__(
        self,
        outdated_cutoff_ns: int = DEFAULT_OUTDATED_CUTOFF_NS,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.time_flags = TimeFlagger(outdated_cutoff_ns)
        self.max_frame_bytes = max_frame_bytes
        #: native symbols whose book needs a REST snapshot (the live connection fetches them)
        self.snapshot_requests: set[str] = set()
        #: native symbols whose subscription must be renewed (exchanges that resync by resubscribing)
        self.resubscribe_requests: set[str] = set()
        self.frames = 0
        self.parse_errors = 0

    def on_frame(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        """Normalises one frame received at ``ts_recv`` (ns) into ``out``."""
        self.frames += 1
        if len(frame) > self.max_frame_bytes:
            self.parse_error(out, ts_recv, frame, f"oversized frame ({len(frame)} bytes)")
            return
        try:
            self.handle(ts_recv, frame, out)
        except ParseError as exc:
            self.parse_error(out, ts_recv, frame, exc.reason, exc.symbol, exc.channel)
        except orjson.JSONDecodeError as exc:
            self.parse_error(out, ts_recv, frame, f"malformed JSON: {exc}")
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            self.parse_error(out, ts_recv, frame, f"{type(exc).__name__}: {exc}")

    @abc.abstractmethod
    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        """Parses and normalises one frame (exchange-specific)."""

    def on_disconnect(self, ts_recv: int, out: RecordBuffer) -> None:
        """Called at a disconnect (an empty capture line): books must be rebuilt from a new snapshot."""

    def parse_error(
        self,
        out: RecordBuffer,
        ts_recv: int,
        frame: str | bytes,
        reason: str,
        symbol: str | None = None,
        channel: str = "unknown",
    ) -> None:
        """Records a frame that could not be normalised, keeping the frame itself."""
        self.parse_errors += 1
        emit_event(
            out,
            self.exchange,
            symbol,
            channel,
            ts_recv,
            "parse_error",
            {"reason": reason, **frame_text_for_event(frame)},
        )


@dataclass(frozen=True)
class Subscription:
    """What one connection carries: native symbols and channels (subset of :data:`CHANNELS`)."""

    symbols: tuple[str, ...]
    channels: tuple[str, ...] = CHANNELS


@dataclass
class DialectOptions:
    """Per-run options a dialect may honour (e.g. book depth, checksum verification)."""

    verify_checksums: bool = True
    book_depth: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ExchangeDialect(abc.ABC):
    """One exchange's whole dialect: client side (endpoints, subscribe, snapshots) and simulator side.

    Registered in :mod:`collectors.registry` under :attr:`exchange_id`.
    """

    exchange_id: ClassVar[str]
    default_ws_url: ClassVar[str]
    default_rest_url: ClassVar[str | None] = None
    #: streams/topics allowed on one connection (subscriptions are split across connections above it)
    max_streams_per_connection: ClassVar[int] = 200
    #: application-level ping: (frame text, interval seconds), or None when websocket pings suffice
    app_ping: ClassVar[tuple[str, float] | None] = None

    def __init__(self, options: DialectOptions | None = None) -> None:
        self.options = options or DialectOptions()

    @abc.abstractmethod
    def native_symbol(self, symbol: str) -> str:
        """The exchange's own symbol for a user-given one (native or normalised, e.g. BTCUSDT or BTC-USDT)."""

    @abc.abstractmethod
    def normalise_symbol(self, native: str) -> str:
        """The normalised symbol (DESIGN.md) of a native one."""

    @abc.abstractmethod
    def connection_url(self, ws_url: str, sub: Subscription) -> str:
        """The websocket URL to open for a subscription (exchanges with URL-based streams put them here)."""

    def subscribe_frames(self, sub: Subscription) -> list[str]:
        """Frames to send right after connecting (empty when the URL carries the subscription)."""
        return []

    def resubscribe_frames(self, native_symbols: Sequence[str], sub: Subscription) -> list[str]:
        """Frames that renew the book subscription of some symbols (exchanges that resync this way)."""
        return []

    @abc.abstractmethod
    def new_normaliser(self) -> Normaliser:
        """A fresh normaliser for one connection or one replay."""

    async def fetch_snapshot(self, http: aiohttp.ClientSession, rest_url: str, native_symbol: str) -> str:
        """Fetches a REST book snapshot and returns it wrapped as a generated frame (capture format).

        Only exchanges whose book sync needs REST implement this. Raises ``aiohttp.ClientResponseError``
        on HTTP errors (the connection layer handles 429/418 and ``Retry-After``).
        """
        raise NotImplementedError(f"{self.exchange_id} does not use REST snapshots")

    def snapshot_request_weight(self, native_symbol: str) -> int:
        """Request weight of one snapshot call (for the per-exchange REST budget)."""
        return 1

    @abc.abstractmethod
    def simulator(self, config: SimulatorConfig) -> ExchangeSimulator:
        """A simulator speaking this dialect's protocol (websocket and REST) on loopback."""
