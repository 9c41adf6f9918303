"""``ticktape demo``: the whole system offline, on the embedded defaults.

Simulated exchanges (each in its own dialect, on 127.0.0.1) -> collectors -> the local log -> the sink
-> the Parquet lake, with the quality layer watching every record and serving its dashboard. At the
end it prints what was captured per exchange and a DuckDB query to try.

``--replicas N`` runs N collector replicas per venue (README, "Replicas"), each through its own
:class:`collectors.outage.OutageProxy`; each replica loses its link once, at staggered moments that
never overlap, and the summary shows each replica's gaps and the merged lake's (none).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from collectors.connection import Collector, ConnectionSettings
from collectors.outage import OutageProxy
from collectors.registry import exchange_ids, get_dialect
from collectors.simulator import ExchangeSimulator, SimulatorConfig
from storage.lake import date_of_ns
from storage.sink import Sink, SinkOptions
from streaming import open_consumer, open_publisher
from streaming.base import Publisher
from streaming.replica import ReplicaPublisher
from ticktape.commands.simulate import default_symbols
from ticktape.config import dialect_options_of, enable_config
from ticktape.runtime import (
    arbitration_options,
    build_collector,
    parse_list,
    quality_rows_publisher,
    stop_event_on_signals,
    wait_or_timeout,
)

log = logging.getLogger("ticktape.demo")

#: How far behind the incident exchange's timestamps fall (the story that started ticktape).
INCIDENT_LAG_S = 30.0
#: ``--replicas``: at most this many per venue, named a, b, c, d; each replica's outage lasts this long
MAX_REPLICAS = 4
REPLICA_NAMES = ("a", "b", "c", "d")
REPLICA_OUTAGE_S = 3.0


def register(sub: Any) -> None:
    """Adds ``demo`` to the command line."""
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="run simulated exchanges through the whole pipeline, offline",
        description=(
            "Starts simulated exchanges, collectors, the local log, the sink and the quality dashboard, "
            "runs for --duration seconds and leaves a lake that `ticktape query` reads."
        ),
    )
    p.add_argument("--duration", type=float, default=45.0, help="seconds to run (default 45)")
    p.add_argument("--lake", default="demo-lake", help="lake directory (default ./demo-lake)")
    p.add_argument("--log", help="local log directory (default <lake>/_ticktape/log)")
    p.add_argument(
        "--exchanges",
        default="",
        help=f"comma-separated exchange ids (default all: {', '.join(exchange_ids())})",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8321,
        help="dashboard/metrics port on 127.0.0.1 (0: pick a free one; -1: none)",
    )
    p.add_argument("--host", default="127.0.0.1", help="dashboard address (default 127.0.0.1)")
    p.add_argument("--rate", type=float, default=20.0, help="simulated market steps per second per symbol")
    p.add_argument(
        "--incident", metavar="EXCHANGE", help="from --incident-at on, this exchange sends data 30 s old"
    )
    p.add_argument(
        "--incident-at", type=float, default=20.0, help="seconds after start of the incident (default 20)"
    )
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="EXCHANGE:KIND",
        help="inject a simulator fault at --incident-at: disconnect, silent, heartbeats, gap, checksum, malformed (repeatable)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        choices=range(1, MAX_REPLICAS + 1),
        metavar="N",
        help=f"collector replicas per venue (1-{MAX_REPLICAS}); with 2 or more each loses its link once, "
        "at staggered moments, and the sink keeps one copy (default 1)",
    )
    p.add_argument(
        "--outage-s",
        type=float,
        default=REPLICA_OUTAGE_S,
        help="with --replicas: how long each replica's link is down (default %(default)s s)",
    )
    p.add_argument("--status-every", type=float, default=5.0, help="seconds between status lines (0: none)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="empty the lake first (only a lake that holds nothing but what ticktape writes)",
    )
    p.set_defaults(func=run)
    enable_config(p, "demo")


def run(args: argparse.Namespace) -> int:
    """Runs the demo; exit 0 when every exchange captured data."""
    try:
        ids = parse_list(args.exchanges) or exchange_ids()
        options = dialect_options_of(args)
        dialects = [get_dialect(x, options) for x in ids]
        if args.incident and args.incident not in ids:
            raise ValueError(
                f"--incident {args.incident!r} is not one of the demo exchanges ({', '.join(ids)})"
            )
        faults = [_parse_fault(f, ids) for f in args.fault]
        if args.fresh:
            empty_lake(Path(args.lake))
    except ValueError as exc:
        print(f"ticktape demo: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_demo(args, dialects, faults))


FAULT_KINDS = ("disconnect", "silent", "heartbeats", "gap", "checksum", "malformed")


def _parse_fault(text: str, ids: list[str]) -> tuple[str, str]:
    exchange, _, kind = text.partition(":")
    if exchange not in ids or kind not in FAULT_KINDS:
        raise ValueError(f"--fault {text!r}: expected EXCHANGE:KIND with KIND in {', '.join(FAULT_KINDS)}")
    return exchange, kind


async def _inject(sim: ExchangeSimulator, kind: str) -> None:
    faults = sim.faults
    first = sim.config.symbols[0]
    if kind == "disconnect":
        await sim.disconnect_all()
    elif kind == "silent":
        faults.silent = True
    elif kind == "heartbeats":
        faults.heartbeats_only = True
    elif kind == "gap":
        faults.drop_updates[first] = 1
    elif kind == "checksum":
        faults.corrupt_checksums[first] = 1
    elif kind == "malformed":
        faults.malformed_frames = 1


def lake_entries(lake: Path) -> tuple[list[Path], list[Path]]:
    """``(ticktape's, others)``: the lake's entries that ticktape writes (dataset partitions, its state
    directory) and everything else."""
    from schemas import DATASETS
    from storage.lake import STATE_DIR

    ours: list[Path] = []
    others: list[Path] = []
    if not lake.is_dir():
        return ours, others
    for entry in sorted(lake.iterdir()):
        if entry.name == STATE_DIR and entry.is_dir():
            ours.append(entry)
        elif entry.name in DATASETS and entry.is_dir():
            inner = list(entry.iterdir())
            if all(p.is_dir() and p.name.startswith("exchange=") for p in inner):
                ours.append(entry)
            else:
                others.append(entry)
        else:
            others.append(entry)
    return ours, others


def empty_lake(lake: Path) -> None:
    """Removes a lake's datasets and state; ``ValueError`` (and nothing removed) when it holds anything
    ticktape did not write there."""
    ours, others = lake_entries(lake)
    if others:
        names = ", ".join(p.name for p in others[:5]) + (" ..." if len(others) > 5 else "")
        raise ValueError(
            f"--fresh: {lake} holds what ticktape did not write ({names}); not emptying it: "
            "give another --lake, or empty it yourself"
        )
    for entry in ours:
        shutil.rmtree(entry)
    if ours:
        print(f"demo: emptied {lake} (--fresh)", flush=True)


def lake_has_data(lake: Path) -> bool:
    """True when a dataset of the lake holds a Parquet file."""
    from schemas import DATASETS

    return any(next((lake / ds).glob("exchange=*/date=*/*.parquet"), None) for ds in DATASETS)


async def _demo(args: argparse.Namespace, dialects: list[Any], faults: list[tuple[str, str]]) -> int:
    lake = Path(args.lake)
    log_dir = Path(args.log) if args.log else lake / "_ticktape" / "log"
    if lake_has_data(lake):
        print(
            f"demo: {lake} already holds data from earlier runs; this run adds to it, and the counts "
            "at the end are this run's only (--fresh empties the lake first)",
            flush=True,
        )
    lake.mkdir(parents=True, exist_ok=True)
    run_start_ns = time.time_ns()
    stop = asyncio.Event()
    stop_event_on_signals(stop)

    sims: dict[str, ExchangeSimulator] = {}
    for dialect in dialects:
        sim = dialect.simulator(
            SimulatorConfig(symbols=default_symbols(dialect.exchange_id), rate_hz=args.rate)
        )
        await sim.start()
        sims[dialect.exchange_id] = sim

    publisher: Publisher = open_publisher("local", log_dir=log_dir)
    await publisher.start()

    from quality.live import QualityTracker
    from quality.server import QualityServer
    from ticktape.metrics import pipeline_registry

    tracker = QualityTracker(exchanges=list(sims))
    collectors: list[Collector] = []
    replica_of: dict[Collector, str] = {}
    server: QualityServer | None = None
    if args.port >= 0:
        server = QualityServer(
            tracker,
            host=args.host,
            port=args.port,
            on_rows=quality_rows_publisher(publisher),
            registry=pipeline_registry(collectors, publisher, "local", replicas=replica_of),
            health=lambda: [p for c in collectors for p in c.problems()],
        )
        await server.start()
        print(
            f"dashboard: {server.url}/   metrics: {server.url}/metrics   api: {server.url}/api/quality",
            flush=True,
        )

    settings = ConnectionSettings()
    proxies: dict[str, list[OutageProxy]] = {}
    for dialect in dialects:
        sim = sims[dialect.exchange_id]
        if args.replicas == 1:
            collector = build_collector(
                dialect,
                list(sim.config.symbols),
                publisher,
                ws_url=sim.ws_url,
                rest_url=sim.rest_url,
                settings=settings,
                observers=[tracker.observe],
            )
            await collector.start()
            collectors.append(collector)
            continue
        for name in REPLICA_NAMES[: args.replicas]:
            proxy = OutageProxy("127.0.0.1", sim.port)
            await proxy.start()
            proxies.setdefault(dialect.exchange_id, []).append(proxy)
            collector = build_collector(
                get_dialect(dialect.exchange_id, dialect_options_of(args)),
                list(sim.config.symbols),
                ReplicaPublisher(publisher, name),
                ws_url=proxy.ws_url,
                rest_url=proxy.rest_url,
                settings=settings,
                # the live dashboard shows the first replica (each replica process has its own)
                observers=[tracker.observe] if name == REPLICA_NAMES[0] else [],
            )
            await collector.start()
            collectors.append(collector)
            replica_of[collector] = name

    sink_stop = asyncio.Event()
    sink = Sink(
        open_consumer("local", log_dir=log_dir),
        lake,
        SinkOptions(flush_idle_s=1.0, max_delay_s=5.0, arbitration=arbitration_options()),
    )
    sink_task = asyncio.create_task(sink.run(sink_stop), name="demo-sink")
    side_tasks = [asyncio.create_task(_status_loop(tracker, args.status_every), name="demo-status")]
    if args.incident or faults:
        side_tasks.append(asyncio.create_task(_incident(args, sims, faults), name="demo-incident"))
    if proxies:
        side_tasks.append(asyncio.create_task(_outages(args, proxies, replica_of), name="demo-outages"))

    started = time.monotonic()
    print(f"demo: {len(sims)} simulated exchanges for {args.duration:.0f} s -> lake {lake}", flush=True)
    try:
        await wait_or_timeout(stop, args.duration)
    finally:
        for task in side_tasks:
            task.cancel()
        for collector in collectors:
            await collector.stop()
        if server is not None:
            await server.stop()
        await publisher.close()
        sink_stop.set()
        await sink_task
        # drain what the log received after the live sink's last poll
        await Sink(
            open_consumer("local", log_dir=log_dir),
            lake,
            SinkOptions(until_idle_s=0.5, arbitration=arbitration_options()),
        ).run()
        for exchange_proxies in proxies.values():
            for proxy in exchange_proxies:
                await proxy.stop()
        for sim in sims.values():
            await sim.stop()
    elapsed = time.monotonic() - started
    code = _summary(lake, collectors, tracker, elapsed, run_start_ns)
    if replica_of:
        code = max(code, _replica_summary(lake, run_start_ns))
    return code


def outage_times(duration_s: float, replicas: int, outage_s: float) -> list[float]:
    """When each replica's link goes down: evenly spread over the run, never overlapping (each
    outage ends, and its replica resyncs, well before the next begins)."""
    step = duration_s / (replicas + 1)
    if step < outage_s * 1.5:
        raise ValueError(
            f"--duration {duration_s:g} is too short for {replicas} staggered outages of {outage_s:g} s"
        )
    return [step * (k + 1) - outage_s / 2 for k in range(replicas)]


async def _outages(
    args: argparse.Namespace, proxies: dict[str, list[OutageProxy]], replica_of: dict[Collector, str]
) -> None:
    """Each replica's link goes down in turn; the next outage waits until every collector of the one
    before reconnected and resynced its books (outages never overlap, however long a reconnect takes)."""
    start = time.monotonic()
    previous: list[tuple[Collector, int]] = []
    for k, at in enumerate(outage_times(args.duration, args.replicas, args.outage_s)):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        name = REPLICA_NAMES[k]
        # the replica that goes down next has its books (it received frames), and the one before is
        # back (reconnected; a second for its snapshots): outages never overlap, even on a slow host
        while not all(c.stats.connects > n for c, n in previous) or not all(
            c.stats.frames > 0 for c, r in replica_of.items() if r == name
        ):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        previous = [(c, c.stats.connects) for c, r in replica_of.items() if r == name]
        for exchange_proxies in proxies.values():
            await exchange_proxies[k].outage(args.outage_s)
        print(f"outage: replica {name} loses its link for {args.outage_s:g} s", flush=True)


def _replica_summary(lake: Path, since_ns: int) -> int:
    """Per exchange: each replica's disconnects and gaps, and the merged lake's (none expected where
    the venue's book sequence lets the sink merge updates; the others follow one replica)."""
    from storage.arbitrate import MERGED_GAP, REPLICA_COVER
    from storage.catalog import open_catalog
    from storage.sink import load_arbitration

    state = load_arbitration(lake, "local") or {"books": []}
    held = collections.Counter(ex for ex, _sym, book in state["books"] if book["held"])
    leader_mode = arbitration_options().connection_sequenced

    with open_catalog(str(lake)) as catalog:
        events = catalog.query(
            "SELECT exchange, coalesce(replica, '') AS replica, kind, count(*) AS n FROM feed_events "
            "WHERE ts_recv >= make_timestamp_ns(?::BIGINT)::TIMESTAMPTZ_NS AND date >= CAST(? AS DATE) "
            "AND kind IN ('disconnect', 'gap', 'resync', ?, ?) GROUP BY ALL",
            [since_ns, date_of_ns(since_ns), REPLICA_COVER, MERGED_GAP],
        ).to_pylist()
        book = catalog.query(
            "SELECT exchange, count(*) FILTER (WHERE flags & 2 <> 0) AS bad, max(epoch) AS epochs, "
            "count(*) FILTER (WHERE seq IS NULL) AS unsequenced FROM book "
            "WHERE ts_recv >= make_timestamp_ns(?::BIGINT)::TIMESTAMPTZ_NS AND date >= CAST(? AS DATE) "
            "AND replica IS NOT NULL GROUP BY exchange",
            [since_ns, date_of_ns(since_ns)],
        ).to_pylist()
    counts: dict[tuple[str, str, str], int] = {
        (e["exchange"], e["replica"], e["kind"]): e["n"] for e in events
    }
    merged = {b["exchange"]: b for b in book}
    replicas = sorted({e["replica"] for e in events if e["replica"]})
    exchanges = sorted({e["exchange"] for e in events} | set(merged))
    print("\nreplicas (this run): per replica its own disconnects and book gaps; merged: the lake")
    print(f"  {'exchange':<24}{'replica':<9}{'disconnects':>12}{'gaps':>6}{'covered':>9}  merged book")
    failed = []
    for ex in exchanges:
        for r in replicas:
            print(
                f"  {ex:<24}{r:<9}{counts.get((ex, r, 'disconnect'), 0):>12}{counts.get((ex, r, 'gap'), 0):>6}"
                f"{counts.get((ex, r, REPLICA_COVER), 0):>9}"
            )
        m = merged.get(ex, {})
        gaps = counts.get((ex, "", MERGED_GAP), 0)
        if ex in leader_mode or m.get("unsequenced"):
            # no sequence comparable across replicas: the book follows one replica at a time
            shown = f"follows one replica (no comparable sequence): {m.get('epochs')} fail-over(s)/resync(s)"
        elif held.get(ex):
            shown = "a resync is still held at the end of the stream (the sink decides when more comes)"
        elif gaps == 0 and not m.get("bad") and m.get("epochs") == 0:
            shown = "gap-free"
        else:
            shown = f"{gaps} gap(s), {m.get('bad', 0)} flagged rows, epoch {m.get('epochs')}"
            failed.append(ex)
        print(f"  {ex:<24}{'merged':<9}{'-':>12}{gaps:>6}{'-':>9}  {shown}")
    if failed:
        print(f"ticktape demo: the merged book has gaps for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


async def _incident(
    args: argparse.Namespace, sims: dict[str, ExchangeSimulator], faults: list[tuple[str, str]]
) -> None:
    await asyncio.sleep(args.incident_at)
    if args.incident:
        sims[args.incident].faults.ts_lag_ns = int(INCIDENT_LAG_S * 1e9)
        print(
            f"incident: {args.incident} now sends data {INCIDENT_LAG_S:.0f} s old over a live socket",
            flush=True,
        )
    for exchange, kind in faults:
        await _inject(sims[exchange], kind)
        print(f"fault: {exchange} {kind}", flush=True)


async def _status_loop(tracker: Any, every_s: float) -> None:
    if every_s <= 0:
        return
    while True:
        await asyncio.sleep(every_s)
        parts = []
        for row in tracker.api():
            parts.append(f"{row['exchange']} {row['state']} {row['score']:.0f}")
        print("status: " + " | ".join(parts), flush=True)


#: derivatives datasets counted in the summary's ``derivs`` column (funding, mark/index, open interest,
#: liquidations rows of the venues that carry them)
DERIVATIVES_SHOWN: tuple[str, ...] = ("funding", "mark_price", "open_interest", "liquidations")


def _summary(lake: Path, collectors: list[Collector], tracker: Any, elapsed: float, since_ns: int) -> int:
    from storage.catalog import open_catalog

    print(f"\ncaptured in {elapsed:.1f} s (this run only):")
    counts: dict[str, dict[str, int]] = {}
    with open_catalog(str(lake)) as catalog:
        for dataset in ("trades", "book", "bbo", "feed_events", *DERIVATIVES_SHOWN):
            # received since this run started: rows of earlier runs in the same lake are not counted
            table = catalog.query(
                f"SELECT exchange, count(*) AS n FROM {dataset} "
                "WHERE ts_recv >= make_timestamp_ns(?::BIGINT)::TIMESTAMPTZ_NS AND date >= CAST(? AS DATE) "
                "GROUP BY exchange",
                [since_ns, date_of_ns(since_ns)],
            )
            for exchange, n in zip(
                table.column("exchange").to_pylist(), table.column("n").to_pylist(), strict=True
            ):
                counts.setdefault(exchange, {})[dataset] = n
    states = {row["exchange"]: row for row in tracker.api()}
    width = max([len("exchange"), *(len(c.exchange) for c in collectors)]) + 2
    print(f"  {'exchange':<{width}}{'trades':>9}{'book':>10}{'bbo':>9}{'derivs':>8}{'events':>8}  state")
    missing = []
    for ex in dict.fromkeys(c.exchange for c in collectors):  # replicas of one venue: one line
        c = counts.get(ex, {})
        state = states.get(ex, {})
        derivs = sum(c.get(d, 0) for d in DERIVATIVES_SHOWN)
        print(
            f"  {ex:<{width}}{c.get('trades', 0):>9}{c.get('book', 0):>10}{c.get('bbo', 0):>9}{derivs:>8}"
            f"{c.get('feed_events', 0):>8}  {state.get('state', '?')} {state.get('score', 0):.0f}"
        )
        offered = get_dialect(ex).channels
        if not c.get("book") or ("bbo" in offered and not c.get("bbo")):
            missing.append(ex)
    print("\ntry:")
    print(
        f'  .venv/bin/ticktape query --lake {lake} "SELECT exchange, symbol, count(*) AS trades, '
        'round(sum(price*size)/sum(size), 2) AS vwap FROM trades GROUP BY ALL ORDER BY ALL"'
    )
    if missing:
        print(f"ticktape demo: no book/bbo captured for {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
