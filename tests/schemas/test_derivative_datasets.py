"""Derivatives and reference datasets (instruments, funding, mark_price, open_interest, liquidations):
built by the shared row builders, carried by the local log and the Avro codec, written by the sink
under the usual lake layout, read through the ``ticktape query`` views, and observed by the quality
layer as channels of their own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from collectors.base import Normaliser
from quality.live import QualityTracker
from schemas import DATASET_CHANNELS, DERIVATIVE_DATASETS, RECORD_DATASETS, RecordBuffer, rows_to_arrow
from storage.catalog import open_catalog
from streaming import codec
from tests.storage.test_sink import lake_rows, make_log, run_sink

DAY = int(datetime(2026, 12, 5, tzinfo=UTC).timestamp()) * 10**9
MS = 1_000_000


class RowsOnly(Normaliser):
    """A normaliser used only for its row builders (no wire dialect)."""

    exchange: ClassVar[str] = "binance-futures"

    def handle(self, ts_recv: int, frame: str | bytes, out: RecordBuffer) -> None:
        raise NotImplementedError


def built_rows() -> RecordBuffer:
    """One of each derivatives row, as a venue module builds them."""
    n = RowsOnly()
    out = RecordBuffer()
    t = DAY + 3_600 * 10**9
    n.emit_funding(out, "BTC-USDT-PERP", t, t + 5 * MS, 0.0001, None, DAY + 8 * 3_600 * 10**9)
    n.emit_mark_price(out, "BTC-USDT-PERP", t, t + 5 * MS, 97_001.5, 96_998.25)
    n.emit_open_interest(out, "BTC-USDT-PERP", t, t + 6 * MS, 81_234.5, None)
    n.emit_liquidation(out, "ETH-USDT-PERP", t, t + 7 * MS, None, "sell", 3_601.5, 1.25)
    # a record 3 s old is OUTDATED like any trade would be
    n.emit_mark_price(out, "ETH-USDT-PERP", t, t + 3_000 * MS, 3_600.0)
    out.instruments.append(
        (
            "binance-futures", "BTC-USDT-PERP", "BTCUSDT", "perpetual", "BTC", "USDT", "USDT",
            0.1, 0.001, 1.0, None, None, None, "trading", t,
        )
    )  # fmt: skip
    return out


def test_datasets_are_appended_after_the_existing_ones() -> None:
    # The local log stores a dataset's index: the first five keep theirs.
    assert RECORD_DATASETS[:5] == ("trades", "book", "bbo", "feed_events", "quality")
    assert RECORD_DATASETS[5:] == (*DERIVATIVE_DATASETS, "raw")
    assert {DATASET_CHANNELS[d] for d in DERIVATIVE_DATASETS if d != "instruments"} == {
        "funding",
        "mark",
        "open_interest",
        "liquidations",
    }


def test_row_builders_set_time_flags_and_codec_round_trips() -> None:
    out = built_rows()
    assert out.mark_price[0][-1] == 0 and out.mark_price[1][-1] & 1  # OUTDATED
    for dataset in DERIVATIVE_DATASETS:
        rows = out.rows(dataset)
        assert rows, dataset
        batch = rows_to_arrow(dataset, rows)
        assert batch.num_rows == len(rows)
        decoded = codec.decode(codec.encode_rows(dataset, rows))
        assert [(d, tuple(r)) for d, r in decoded] == [(dataset, r) for r in rows]


def test_local_log_sink_lake_and_query_views(tmp_path: Path) -> None:
    out = built_rows()
    log, lake = tmp_path / "log", tmp_path / "lake"
    make_log(log, [(d, out.rows(d)) for d in DERIVATIVE_DATASETS])
    run_sink(log, lake)
    for dataset in DERIVATIVE_DATASETS:
        assert sorted(lake_rows(lake, dataset)) == sorted(out.rows(dataset)), dataset
        part = lake / dataset / "exchange=binance-futures" / "date=2026-12-05"
        assert list(part.glob("*.parquet")), f"{dataset}: not under the usual layout"
    with open_catalog(str(lake)) as catalog:
        got: Any = catalog.con.execute(
            "SELECT symbol, funding_rate, epoch_ns(next_funding_time) FROM funding"
        ).fetchall()
        assert got == [("BTC-USDT-PERP", 0.0001, DAY + 8 * 3_600 * 10**9)]
        got = catalog.con.execute("SELECT mark_price, index_price FROM mark_price ORDER BY symbol").fetchall()
        assert got == [(97_001.5, 96_998.25), (3_600.0, None)]
        got = catalog.con.execute("SELECT kind, tick_size, lot_size FROM instruments").fetchall()
        assert got == [("perpetual", 0.1, 0.001)]


def test_quality_observes_each_derivatives_channel() -> None:
    tracker = QualityTracker()
    tracker.observe(built_rows())
    rows = tracker.snapshot(DAY + 3_601 * 10**9)
    channels = {r[2] for r in rows if r[0] == "binance-futures"}
    assert {"funding", "mark", "open_interest", "liquidations"} <= channels


@pytest.mark.parametrize("dataset", DERIVATIVE_DATASETS)
def test_empty_dataset_is_an_empty_view(tmp_path: Path, dataset: str) -> None:
    (tmp_path / "lake").mkdir()
    with open_catalog(str(tmp_path / "lake")) as catalog:
        assert catalog.con.execute(f"SELECT count(*) FROM {dataset}").fetchone() == (0,)
