"""Planned rotation on by default from the dialect's facts, and make-before-break across a venue that
closes every connection at a fixed age (Binance and Bitget: 24 h; here seconds)."""

from __future__ import annotations

import orjson

from collectors.connection import ConnectionSettings
from tests.collectors.book_replay import tops_by_seq
from tests.collectors.test_connection import FAST, running


def assert_each_trade_once_and_books_continuous(run: object, symbols: tuple[str, ...]) -> None:
    got = run.got  # type: ignore[attr-defined]
    for symbol in symbols:
        ids = [int(r[4]) for r in got.trades if r[1] == symbol]
        assert len(ids) > 5, symbol
        assert len(ids) == len(set(ids)), f"{symbol}: a trade was published twice"
        assert ids == list(range(ids[0], ids[0] + len(ids))), f"{symbol}: a trade was lost"
        seqs = [r[8] for r in got.bbo if r[1] == symbol]
        assert seqs == sorted(set(seqs)), f"{symbol}: bbo went backwards or repeated"
    tops = tops_by_seq(got.book)
    compared = 0
    for row in got.bbo:
        top = tops.get((row[1], row[8]))
        if top is not None:
            assert (top[0][0], top[0][1], top[1][0], top[1][1]) == row[4:8]
            compared += 1
    assert compared > 50


async def test_rotation_before_the_venues_forced_close_keeps_every_trade_once_without_gaps() -> None:
    """Acceptance: rotate at 2 s against a server that closes every connection 2.6 s after it opened."""
    settings = ConnectionSettings(**{**FAST.__dict__, "max_connection_age_s": 2.0})
    symbols = ("BTC-USDT", "ETH-USDT")
    async with running(settings=settings, rate_hz=60, max_connection_age_s=2.6) as run:
        await run.until(lambda: run.collector.rotations >= 3, 30)
        mark = len(run.got.trades)
        await run.until(lambda: len(run.got.trades) > mark + 10)
    assert run.events("gap") == []
    # the venue's forced close never hit a live connection: every disconnect is a planned rotation
    reasons = {orjson.loads(e[5])["reason"] for e in run.events("disconnect")}
    assert reasons <= {"stopped", "rotation"}, reasons
    assert run.sim.connections_total >= 4
    assert_each_trade_once_and_books_continuous(run, symbols)


async def test_without_rotation_the_forced_close_is_an_unplanned_disconnect() -> None:
    """The control: the same server with rotation off gives disconnects and resyncs (what rotation avoids)."""
    settings = ConnectionSettings(**{**FAST.__dict__, "max_connection_age_s": 0.0})
    async with running(settings=settings, rate_hz=60, max_connection_age_s=1.0) as run:
        await run.until(lambda: len(run.events("disconnect")) >= 2, 15)
    assert run.collector.rotations == 0
    assert {orjson.loads(e[5])["reason"] for e in run.events("disconnect")} - {"stopped"} == {"closed"}


async def test_server_shutdown_rotates_at_once_and_is_no_parse_error() -> None:
    settings = ConnectionSettings(**{**FAST.__dict__, "max_connection_age_s": 3600.0})
    async with running(settings=settings, rate_hz=60) as run:
        await run.until(lambda: len(run.got.trades) > 10)
        for session in list(run.sim.sessions):
            run.sim.send(session, '{"e":"serverShutdown","E":1764921600000}')
        await run.until(lambda: run.collector.rotations >= 1, 15)
        mark = len(run.got.bbo)
        await run.until(lambda: len(run.got.bbo) > mark + 150)
    assert run.events("parse_error") == []
    assert len(run.events("server_shutdown")) == 1
    assert run.collector.stats.shutdown_rotations == 1
    assert run.events("gap") == []
    assert_each_trade_once_and_books_continuous(run, ("BTC-USDT", "ETH-USDT"))


async def test_binance_books_continue_at_a_matching_update_id_other_venues_resync() -> None:
    """Binance: one epoch, one snapshot, no resync across rotations. A venue whose book sequence is not
    shared between connections (OKX's seqId is per subscription) hands its books over as a resync."""
    settings = ConnectionSettings(**{**FAST.__dict__, "max_connection_age_s": 1.5})
    async with running(settings=settings, rate_hz=60) as run:
        await run.until(lambda: run.collector.rotations >= 2, 20)
    assert run.events("resync") == [] and run.events("gap") == []
    assert {r[9] for r in run.got.book} == {1} or len({r[9] for r in run.got.book}) == 1
    async with running("okx", symbols=("BTC-USDT", "ETH-USDT"), settings=settings, rate_hz=60) as okx:
        await okx.until(lambda: okx.collector.rotations >= 2, 20)
        mark = len(okx.got.bbo)
        await okx.until(lambda: len(okx.got.bbo) > mark + 50)
    reasons = [orjson.loads(e[5])["reason"] for e in okx.events("resync")]
    assert reasons and set(reasons) == {"rotation"}
    assert okx.events("gap") == []
    for symbol in ("BTC-USDT", "ETH-USDT"):
        epochs = [r[9] for r in okx.got.book if r[1] == symbol]
        assert epochs == sorted(epochs) and epochs[-1] >= 2
        ids = [r[4] for r in okx.got.trades if r[1] == symbol]
        assert len(ids) == len(set(ids)), "a trade was published twice"


def test_a_handover_never_puts_a_book_row_before_the_old_connections_last() -> None:
    """The successor, held while it synced, can have received an update a few ms before the old
    connection received the previous one. The lake orders a symbol's book by ts_recv, so the handed-
    over rows take at least the old connection's last book ts_recv (by sequence: Binance; and as a
    resync: venues whose sequences differ per connection)."""
    from types import SimpleNamespace

    from collectors.connection import Collector, HandoverLog
    from collectors.registry import get_dialect
    from schemas import RecordBuffer

    def row(ts: int, seq: int, epoch: int, *, snap: bool = False, price: float = 100.0) -> tuple:
        return ("x", "BTC-USDT", ts - 5, ts, "bid", price, 1.0, snap, seq, epoch, 0)

    for exchange, by_seq in (("binance", True), ("bitget", False)):
        collector = Collector(get_dialect(exchange), ["BTCUSDT"], lambda out: None)
        assert collector.dialect.book_handover_by_seq is by_seq
        old_last = row(1_000_900, 10, 3)  # old received update 10 at 1_000_900
        old = SimpleNamespace(
            last_book={"BTC-USDT": old_last}, handover_log=HandoverLog(), published_trades=None
        )
        held = RecordBuffer()
        # the successor: snapshot at 8 (received 1_000_100), updates 9, 10, 11 (11 at 1_000_850,
        # before old's update 10), 12 at 1_001_000
        held.book += [row(1_000_100, 8, 0, snap=True), row(1_000_200, 9, 0), row(1_000_700, 10, 0)]
        held.book += [row(1_000_850, 11, 0, price=101.0), row(1_001_000, 12, 0, price=102.0)]
        new = SimpleNamespace(held=held, epoch_offsets={}, name="binance-0b")
        out = collector._handover(old, new)  # type: ignore[arg-type]
        stamps = [r[3] for r in out.book]
        assert min(stamps) >= old_last[3], stamps
        assert stamps == sorted(stamps)
        if by_seq:  # continues at 11 in old's epoch; 11 takes old's ts_recv, 12 keeps its own
            assert [(r[8], r[9], r[3]) for r in out.book] == [(11, 3, 1_000_900), (12, 3, 1_001_000)]
        else:  # a resync into the next epoch: the snapshot and every update, none before old's last
            assert [r[8] for r in out.book] == [8, 9, 10, 11, 12] and {r[9] for r in out.book} == {4}
            assert [e[4] for e in out.feed_events] == ["resync"]
