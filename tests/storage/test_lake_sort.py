"""sort_for_lake skips the sort only when the rows are already in (symbol, ts_recv) order."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc

from schemas import arrow_to_rows, rows_to_arrow
from storage.lake import SORT_KEYS, is_sorted_for_lake, sort_for_lake, symbol_order


def _table(rows: list[tuple[object, ...]]) -> pa.Table:
    return pa.Table.from_batches([rows_to_arrow("trades", rows)])


def test_sorted_tables_are_returned_as_they_are_and_others_are_sorted() -> None:
    rng = random.Random(7)
    for _ in range(400):
        n = rng.randint(0, 14)
        rows = [
            ("binance", rng.choice("ABC"), None, rng.randint(0, 4), str(i), 1.0, 1.0, None, 0)
            for i in range(n)
        ]
        if rng.random() < 0.5:
            rows.sort(key=lambda r: (r[1], r[3]))
        table = _table(rows)
        expected = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS)) if n else table
        in_order = arrow_to_rows(table) == arrow_to_rows(expected)
        assert is_sorted_for_lake(table) is in_order
        out = sort_for_lake(table)
        assert arrow_to_rows(out) == arrow_to_rows(expected)
        if in_order:
            assert out is table


def test_chunked_columns_and_equal_keys() -> None:
    a = _table(
        [("binance", "A", None, 5, "1", 1.0, 1.0, None, 0), ("binance", "A", None, 5, "2", 1.0, 1.0, None, 0)]
    )
    b = _table([("binance", "B", None, 1, "3", 1.0, 1.0, None, 0)])
    assert is_sorted_for_lake(pa.concat_tables([a, b]))
    assert not is_sorted_for_lake(pa.concat_tables([b, a]))


def test_interleaved_symbols_each_in_order_are_grouped_without_a_full_sort() -> None:
    """A stream's unit: the symbols of a partition interleaved, each in receive order (ties kept)."""
    rng = random.Random(11)
    for _ in range(200):
        rows = []
        clock = dict.fromkeys("ZAMQ", 0)
        for i in range(rng.randint(2, 40)):
            symbol = rng.choice("ZAMQ")
            clock[symbol] += rng.randint(0, 2)  # equal receive times happen (one frame's rows)
            rows.append(("okx", symbol, None, clock[symbol], str(i), 1.0, 1.0, None, 0))
        half = len(rows) // 2
        table = pa.concat_tables([_table(rows[:half]), _table(rows[half:])])  # chunked, as in the sink
        expected = table.take(pc.sort_indices(table, sort_keys=SORT_KEYS))
        order = symbol_order(table)
        assert order is not None
        assert arrow_to_rows(table.take(order)) == arrow_to_rows(expected)
        assert arrow_to_rows(sort_for_lake(table)) == arrow_to_rows(expected)
    late = _table(
        [
            ("okx", "A", None, 5, "1", 1.0, 1.0, None, 0),
            ("okx", "B", None, 1, "2", 1.0, 1.0, None, 0),
            ("okx", "A", None, 4, "3", 1.0, 1.0, None, 0),
        ]
    )
    assert symbol_order(late) is None  # A's rows are not in order: the full sort decides
    assert [r[4] for r in arrow_to_rows(sort_for_lake(late))] == ["3", "1", "2"]
