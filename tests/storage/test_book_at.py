"""``ticktape book`` equals the book the Binance normaliser held at the same instant, on the real sample."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path

import pytest

from collectors.book import SyncedBook
from collectors.capture import CaptureError, read_capture
from collectors.venues.binance import BinanceNormaliser
from schemas import RecordBuffer
from storage.book_at import BookAt, book_at, parse_instant
from storage.catalog import open_catalog
from storage.compact import compact_lake
from ticktape.commands import book as book_cmd
from ticktape.commands.replay import replay_to_lake

from .lakegen import run_command

SAMPLE = Path("binance/ethusdt_20240808.capture.gz")
NATIVE, SYMBOL = "ETHUSDT", "ETH-USDT"


def frames(path: Path) -> list[tuple[int, bytes] | None]:
    out: list[tuple[int, bytes] | None] = []
    for item in read_capture(path):
        assert not isinstance(item, CaptureError)
        out.append(item)
    return out


def collector_books(path: Path, instants: list[int]) -> dict[int, SyncedBook | None]:
    """The normaliser's book right after the last frame received at or before each instant."""
    normaliser = BinanceNormaliser()
    out = RecordBuffer()
    seen: dict[int, SyncedBook | None] = {}
    todo = sorted(instants)
    items = frames(path)
    i = 0

    def snapshot_state() -> SyncedBook | None:
        book = normaliser.books.get(NATIVE)
        if book is None:
            return None
        copy = SyncedBook(book.exchange, book.symbol)
        copy.synced, copy.epoch = book.synced, book.epoch
        for side in ("bid", "ask"):
            for price, size, p_str, s_str in book.book.top(side, 10**9):
                copy.book.set_level(side, price, size, p_str, s_str)
        return copy

    for t in todo:
        while i < len(items):
            item = items[i]
            if item is not None and item[0] > t:
                break
            if item is None:
                normaliser.on_disconnect(0, out)
            else:
                normaliser.on_frame(item[0], item[1], out)
            i += 1
        seen[t] = snapshot_state()
    return seen


def assert_same(got: BookAt, want: SyncedBook | None) -> None:
    if want is None or not want.synced:
        assert not got.synced, f"lake has a book at {got.at_ns} but the collector had none"
        assert got.bids == [] and got.asks == []
        return
    assert got.synced, got.reason
    assert got.epoch == want.epoch
    assert got.bids == [(p, s) for p, s, _, _ in want.book.top("bid", 10**9)]
    assert got.asks == [(p, s) for p, s, _, _ in want.book.top("ask", 10**9)]


def pick_instants(items: list[tuple[int, bytes] | None]) -> list[int]:
    stamps = [item[0] for item in items if item is not None]
    snapshot = next(item[0] for item in items if item is not None and b"depthSnapshot" in item[1])
    picks = [stamps[0], snapshot - 1, snapshot, snapshot + 1]
    step = len(stamps) // 12
    for k in range(1, 12):
        t = stamps[k * step]
        picks += [t, t + 1, t - 1]
    picks.append(stamps[-1] + 10**9)
    return sorted(set(picks))


@pytest.fixture(scope="module")
def sample_lake(samples: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    lake = tmp_path_factory.mktemp("book") / "lake"
    replay_to_lake(samples / SAMPLE, "binance", lake)
    return samples / SAMPLE, lake


def test_book_equals_the_collectors_book(sample_lake: tuple[Path, Path]) -> None:
    capture, lake = sample_lake
    instants = pick_instants(frames(capture))
    expected = collector_books(capture, instants)
    synced = 0
    with open_catalog(str(lake)) as cat:
        for t in instants:
            got = book_at(cat, "binance", SYMBOL, t)
            assert_same(got, expected[t])
            synced += got.synced
            if got.synced:
                assert len(got.bids) > 100 and len(got.asks) > 100  # the whole book, not just the top
    assert synced >= 30  # most instants are after the snapshot
    assert any(not expected[t] or not expected[t].synced for t in instants)  # and some before it


def test_after_compaction_and_depth(sample_lake: tuple[Path, Path], tmp_path: Path) -> None:
    capture, lake = sample_lake
    copy = tmp_path / "lake"
    import shutil

    shutil.copytree(lake, copy)
    results = compact_lake(copy, closed_before=date(2030, 1, 1))
    assert {r.status for r in results} == {"compacted"}
    t = pick_instants(frames(capture))[-5]
    [want] = collector_books(capture, [t]).values()
    with open_catalog(str(copy)) as cat:
        full = book_at(cat, "binance", SYMBOL, t)
        assert_same(full, want)
        top = book_at(cat, "binance", SYMBOL, t, depth=5)
        assert top.bids == full.bids[:5] and top.asks == full.asks[:5]
        assert top.bids[0][0] < top.asks[0][0]


def test_gap_leaves_the_book_unsynced_like_the_collector(samples: Path, tmp_path: Path) -> None:
    """Drop one depth frame: the collector sees a gap and clears the book; so must the lake's book."""
    items = frames(samples / SAMPLE)
    depth_idx = [i for i, item in enumerate(items) if item is not None and b"@depth@" in item[1]]
    dropped = depth_idx[len(depth_idx) // 2]
    capture = tmp_path / "gap.capture.gz"
    with gzip.open(capture, "wb") as fh:
        for i, item in enumerate(items):
            if i == dropped:
                continue
            fh.write(b"\n" if item is None else b"%d %s\n" % (item[0], item[1]))
    lake = tmp_path / "lake"
    replay_to_lake(capture, "binance", lake)
    gap_ts = items[dropped + 1][0]  # the next depth frame (or later) reveals the gap
    instants = [items[dropped - 1][0], gap_ts + 10**6, items[-1][0]]
    expected = collector_books(capture, instants)
    assert expected[instants[0]].synced and not expected[instants[-1]].synced
    with open_catalog(str(lake)) as cat:
        for t in instants:
            got = book_at(cat, "binance", SYMBOL, t)
            assert_same(got, expected[t])
        late = book_at(cat, "binance", SYMBOL, instants[-1])
        assert "gap" in late.reason


def test_cli(sample_lake: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capture, lake = sample_lake
    t = pick_instants(frames(capture))[-3]
    [want] = collector_books(capture, [t]).values()
    argv = ["book", "--lake", str(lake), "--exchange", "binance", "--symbol", SYMBOL, "--at", str(t)]
    assert run_command(book_cmd, [*argv, "--format", "json", "--depth", "3"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["synced"] and got["at_ns"] == t
    assert [tuple(x) for x in got["bids"]] == [(p, s) for p, s, _, _ in want.book.top("bid", 3)]
    assert [tuple(x) for x in got["asks"]] == [(p, s) for p, s, _, _ in want.book.top("ask", 3)]
    assert run_command(book_cmd, argv) == 0
    table = capsys.readouterr().out
    assert "binance ETH-USDT at 2024-08-08T" in table and "epoch 0" in table
    assert len(table.splitlines()) == 3 + 10  # header lines + 10 levels (default depth)
    before = ["--at", "2024-08-08T00:00:00Z"]
    assert run_command(book_cmd, [*argv[:-2], *before]) == 1
    assert "no snapshot" in capsys.readouterr().out
    assert run_command(book_cmd, [*argv[:-2], "--at", "yesterday"]) == 2
    assert "not a timestamp" in capsys.readouterr().err
    assert (
        run_command(book_cmd, [*argv[:-4], "--exchange", "../etc", "--symbol", SYMBOL, "--at", str(t)]) == 2
    )


def test_parse_instant() -> None:
    assert parse_instant("1723161254152322667") == 1723161254152322667
    assert parse_instant("2024-08-08T23:54:14.152322667Z") == 1723161254152322667
    assert parse_instant("2024-08-08 23:54:14.152322667") == 1723161254152322667
    assert parse_instant("2024-08-09T01:54:14.152322667+02:00") == 1723161254152322667
    assert parse_instant("2024-08-08T23:54:14.15Z") == 1723161254150000000
    assert parse_instant("2024-08-08T23:54Z") == 1723161240000000000
    for bad in ("2024-08-08", "2024-08-08T25:00:00Z", "soon", "2024-13-01T00:00:00Z"):
        with pytest.raises(ValueError):
            parse_instant(bad)


def test_book_index_gives_the_same_books(
    sample_lake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints every 20 s: every instant's book equals the full rebuild and the collector's."""
    import shutil

    from storage import book_at as book_at_mod

    capture, lake = sample_lake
    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    monkeypatch.setattr(book_at_mod, "CHECKPOINT_NS", 20 * 10**9)
    monkeypatch.setattr(book_at_mod.build_book_index, "__defaults__", (20 * 10**9,))
    results = compact_lake(copy, closed_before=date(2030, 1, 1))
    [book_res] = [r for r in results if r.partition.dataset == "book"]
    assert book_res.detail.startswith("book index: ") and int(book_res.detail.split()[2]) >= 15
    day = date(2024, 8, 8)
    assert book_at_mod.index_is_current(copy, "binance", day)

    used = []
    real_load = book_at_mod.load_checkpoint

    def spy(*args, **kwargs):
        ckpt = real_load(*args, **kwargs)
        used.append(ckpt is not None)
        return ckpt

    monkeypatch.setattr(book_at_mod, "load_checkpoint", spy)
    instants = pick_instants(frames(capture))
    expected = collector_books(capture, instants)
    with open_catalog(str(copy)) as cat:
        for t in instants:
            fast = book_at(cat, "binance", SYMBOL, t)
            assert_same(fast, expected[t])
            if fast.synced:
                full = book_at(cat, "binance", SYMBOL, t, use_index=False)
                assert (fast.bids, fast.asks, fast.rows_applied, fast.last_seq) == (
                    full.bids,
                    full.asks,
                    full.rows_applied,
                    full.last_seq,
                )
                assert fast.last_update_ns == full.last_update_ns
    assert sum(used) >= 20  # most instants started from a checkpoint

    # A late file makes the index stale: it is ignored (answers stay right) and rebuilt by compaction.
    part = next((copy / "book" / "exchange=binance").glob("date=*"))
    (part / "zz-late.parquet").write_bytes(b"")
    assert not book_at_mod.index_is_current(copy, "binance", day)
    (part / "zz-late.parquet").unlink()
    assert book_at_mod.index_is_current(copy, "binance", day)
