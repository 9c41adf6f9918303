"""collectors.base.TimeFlagger: per-record time flags, aware of a host clock that is behind."""

from __future__ import annotations

from collectors.base import TimeFlagger
from schemas import Flags

NS = 1_000_000_000
MS = 1_000_000
T0 = 1_723_161_254 * NS


def run(flagger: TimeFlagger, seconds: int, latency_ns: int, start: int = 0) -> list[int]:
    """Ten records a second for ``seconds`` seconds, each with raw latency ``latency_ns``."""
    out = []
    for i in range(start * 10, (start + seconds) * 10):
        recv = T0 + i * 100 * MS
        out.append(flagger.flags(recv - latency_ns, recv))
    return out


def test_fresh_feed_with_a_sane_clock_has_no_flags_and_old_data_is_outdated():
    f = TimeFlagger()
    assert set(run(f, 10, 5 * MS)) == {0}
    assert set(run(f, 20, 30 * NS, start=10)) == {int(Flags.OUTDATED)}  # the 30 s incident
    assert f.flags(None, T0 + 40 * NS) == 0


def test_host_clock_behind_sets_bad_ts_recv_and_outdated_is_judged_above_the_floor():
    f = TimeFlagger()
    skew = -1_270 * MS  # the Binance sample's host clock
    flags = run(f, 10, skew + 5 * MS)
    assert set(flags) == {int(Flags.NEG_LATENCY | Flags.BAD_TS_RECV)}
    assert abs(f.floor_ns - (skew + 5 * MS)) < MS
    # 3 s late on top of the skew: raw latency 1.73 s is below the cutoff, but it is OUTDATED
    recv = T0 + 11 * NS
    assert f.flags(recv - (skew + 3 * NS), recv) == int(Flags.BAD_TS_RECV | Flags.OUTDATED)
    # records without an exchange time carry the untrusted receive time too
    assert f.flags(None, recv) == int(Flags.BAD_TS_RECV)


def test_one_stray_timestamp_does_not_move_the_floor_once_learned():
    f = TimeFlagger()
    run(f, 10, 5 * MS)
    recv = T0 + 10 * NS + 50 * MS
    assert f.flags(recv + 10 * NS, recv) == int(Flags.NEG_LATENCY)  # an exchange time 10 s ahead, once
    assert set(run(f, 10, 5 * MS, start=11)) == {0}  # no BAD_TS_RECV, no OUTDATED afterwards


def test_flags_are_deterministic_given_the_frames():
    frames = [(T0 + i * 37 * MS, (i * 7919) % 400 * MS - 200 * MS) for i in range(2000)]
    a, b = TimeFlagger(), TimeFlagger()
    assert [a.flags(r - lat, r) for r, lat in frames] == [b.flags(r - lat, r) for r, lat in frames]
