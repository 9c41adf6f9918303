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
