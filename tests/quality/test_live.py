"""QualityTracker on synthetic feeds with a virtual clock: floor, incident, silence, hysteresis, rows."""

from __future__ import annotations

from quality.live import QualityTracker
from quality.scoring import NS, ClockFloor, QualityConfig
from schemas import Flags, RecordBuffer, field_names, rows_to_arrow

T0 = 1_723_161_254 * NS
MS = 1_000_000


class Feed:
    """A virtual exchange: N messages per second per channel, with a chosen latency and clock skew."""

    def __init__(self, tracker: QualityTracker, exchange: str = "okx", rate: int = 20) -> None:
        self.tracker = tracker
        self.exchange = exchange
        self.rate = rate
        self.now = T0

    def second(
        self,
        latency_ns: int = 5 * MS,
        skew_ns: int = 0,
        lag_ns: int = 0,
        silent: bool = False,
        snap: bool = True,
    ) -> None:
        """One second of messages, then a snapshot at its end. ``skew_ns`` is host minus exchange clock."""
        out = RecordBuffer()
        step = NS // self.rate
        if not silent:
            for i in range(self.rate):
                t_recv = self.now + i * step
                t_exch = t_recv - latency_ns - skew_ns - lag_ns - (i % 3) * MS
                out.trades.append((self.exchange, "BTC-USDT", t_exch, t_recv, str(i), 1.0, 1.0, "buy", 0))
                out.bbo.append((self.exchange, "BTC-USDT", t_exch, t_recv, 1.0, 1.0, 1.1, 1.0, i, 0))
            self.tracker.observe(out)
        self.now += NS
        if snap:
            self.tracker.snapshot(self.now)

    def view(self) -> dict:
        [item] = [x for x in self.tracker.api(self.now) if x["exchange"] == self.exchange]
        return item


def tracker() -> QualityTracker:
    return QualityTracker(clock=lambda: T0)


def test_host_clock_behind_is_reported_as_offset_not_negative_latency():
    tr = tracker()
    feed = Feed(tr, "binance")
    for _ in range(30):
        feed.second(latency_ns=3 * MS, skew_ns=-1_270 * MS)
    v = feed.view()
    assert abs(v["clock_offset_estimate_s"] - (-1.267)) < 0.002
    assert 0 <= v["latency_p50_s"] < 0.01
    assert v["latency_p99_s"] >= 0
    assert v["outdated_ratio"] == 0
    assert "host clock behind" in v["clock_suspect"]
    # the clock component costs points, the feed itself is fresh
    assert v["components"]["clock"] == 0.0
    assert v["state"] == "DEGRADED"
    assert v["freshness_weight"] == 1.0


def test_incident_30s_old_data_excludes_within_seconds_and_floor_does_not_adapt():
    tr = tracker()
    feed = Feed(tr, "okx")
    for _ in range(25):
        feed.second()
    assert feed.view()["state"] == "OK"
    assert feed.view()["score"] == 100.0
    feed.second(lag_ns=30 * NS)
    v = feed.view()
    assert v["state"] == "EXCLUDE"
    assert "event time behind" in v["reasons"]
    assert v["receive_age_s"] < 1.0
    assert v["event_age_s"] > 29
    assert v["freshness_weight"] == 0.0
    # ten more minutes of the incident: a plain rolling minimum would now call 30 s "clock offset"
    for _ in range(600):
        feed.second(lag_ns=30 * NS)
    v = feed.view()
    assert v["clock_offset_estimate_s"] < 1.0
    assert v["state"] == "EXCLUDE"
    assert v["outdated_ratio"] == 1.0
    # quantiles interpolated in the 30-45 s bucket stay within the latencies seen: 30 s minus a floor
    # that has crept up by 2 ms/s since minute 8 (without the clamp p99 would read ~44 s)
    assert 29.5 < v["latency_p50_s"] <= v["latency_p99_s"] < 30.01


def test_floor_drops_at_once_and_rises_slowly():
    floor = ClockFloor(QualityConfig(floor_window_s=100))
    for s in range(100):
        floor.add_second(s, 10 * MS)
    assert floor.floor_ns == 10 * MS
    for s in range(100, 110):
        floor.add_second(s, -500 * MS)  # host clock stepped back: 5 % of the window adopts it
    assert floor.floor_ns == -500 * MS
    for s in range(110, 300):
        floor.add_second(s, 1 * MS)
    # the window turned over at s=210; from there the floor may rise 2 ms/s at most
    assert -500 * MS < floor.floor_ns < -250 * MS
    assert floor.window_min_ns == 1 * MS


def test_silence_excludes_and_recovery_waits_for_hysteresis():
    tr = tracker()
    feed = Feed(tr, "kraken")
    for _ in range(5):
        feed.second()
    for _ in range(11):
        feed.second(silent=True)
    v = feed.view()
    assert v["state"] == "EXCLUDE"
    assert "silent" in v["reasons"]
    states = []
    for _ in range(20):
        feed.second()
        states.append(feed.view()["state"])
    # not at once: a better state must hold recovery_s (10 s) before it is adopted
    assert states[:10] == ["EXCLUDE"] * 10
    assert states[-1] == "OK" and feed.view()["score"] == 100.0


def test_events_and_duplicates_cost_score_and_are_counted():
    tr = tracker()
    feed = Feed(tr, "bybit")
    for _ in range(5):
        feed.second()
    out = RecordBuffer()
    t = feed.now
    for kind in ("gap", "resync", "checksum_mismatch", "connect"):
        out.feed_events.append(("bybit", "BTC-USDT", "book", t, kind, "{}"))
    out.trades.append(("bybit", "BTC-USDT", t - 5 * MS, t, "x", 1.0, 1.0, None, int(Flags.DUPLICATE)))
    tr.observe(out)
    feed.second()
    v = feed.view()
    assert v["gaps"] == 1 and v["resyncs"] == 1 and v["checksum_failures"] == 1 and v["duplicates"] == 1
    assert v["connections"] == 1
    assert v["components"]["completeness"] == 0.75
    assert v["components"]["integrity"] < 0.5
    assert v["state"] in ("DEGRADED", "EXCLUDE")
    assert v["score"] < 90


def test_book_levels_of_one_frame_count_once_and_rows_fit_the_schema():
    tr = tracker()
    out = RecordBuffer()
    for i in range(400):
        out.book.append(("okx", "BTC-USDT", T0 - 3 * MS, T0, "bid", 100.0 - i, 1.0, True, 7, 0, 16))
    out.book.append(("okx", "BTC-USDT", T0 + 90 * MS, T0 + 100 * MS, "ask", 101.0, 1.0, False, 8, 0, 0))
    out.book.append(("okx", "ETH-USDT", T0 + 90 * MS, T0 + 100 * MS, "ask", 11.0, 1.0, False, 8, 0, 0))
    out.feed_events.append(("okx", "BTC-USDT", "book", T0 + 100 * MS, "gap", "{}"))
    tr.observe(out)
    rows = tr.snapshot(T0 + NS)
    by_key = {(r[1], r[2]): r for r in rows}
    names = field_names("quality")
    messages = names.index("messages")
    gaps = names.index("gaps")
    assert by_key[(None, "all")][messages] == 3
    assert (
        by_key[(None, "all")][gaps] == by_key[(None, "book")][gaps] == by_key[("BTC-USDT", "book")][gaps] == 1
    )
    assert by_key[("ETH-USDT", "book")][gaps] == 0
    assert by_key[("BTC-USDT", "book")][messages] == 2
    assert by_key[("ETH-USDT", "book")][messages] == 1
    batch = rows_to_arrow("quality", rows)
    assert batch.num_rows == len(rows) == 4
    assert set(batch.column("state").to_pylist()) <= {"OK", "DEGRADED", "EXCLUDE"}


def test_expected_exchange_without_data_is_excluded():
    tr = QualityTracker(exchanges=["coinbase"], clock=lambda: T0)
    tr.snapshot(T0 + NS)
    [v] = tr.api(T0 + NS)
    assert v["state"] == "EXCLUDE" and v["score"] == 0.0
    assert "no data" in v["reasons"]


def test_our_own_stall_is_not_blamed_on_the_exchanges_but_one_slow_exchange_is():
    tr = tracker()
    feeds = [Feed(tr, name) for name in ("binance", "bybit", "okx")]

    def second(slow: dict[str, int]) -> None:
        for f in feeds:
            f.second(latency_ns=slow.get(f.exchange, 5 * MS), snap=False)
        tr.snapshot(feeds[0].now)

    for _ in range(20):
        second({})
    # every exchange 1.5 s late at once for two seconds: our process was stalled, not the venues
    for _ in range(2):
        second(dict.fromkeys(("binance", "bybit", "okx"), 1_500 * MS))
    for _ in range(3):
        second({})
    assert tr.host_stalls == 2
    assert {f.view()["state"] for f in feeds} == {"OK"}
    # one exchange 1.5 s late: that one is degraded
    for _ in range(2):
        second({"okx": 1_500 * MS})
    views = {f.exchange: f.view() for f in feeds}
    assert views["okx"]["state"] == "DEGRADED" and views["okx"]["latency_p99_s"] > 1.0
    assert views["binance"]["state"] == "OK" and views["bybit"]["state"] == "OK"
    assert tr.host_stalls == 2
    # a late tick (the caller's loop lag) marks a stall by itself
    feeds[0].tracker.snapshot(feeds[0].now + NS // 2, loop_lag_s=0.4)
    assert tr.host_stalls == 3 and tr.api(feeds[0].now)[0]["collector_lag_s"] == 0.4
