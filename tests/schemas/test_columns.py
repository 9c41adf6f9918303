"""The pandas-free column builder (schemas/columns.py) against pyarrow's own conversion of the rows.

Every shared recording of a registered venue is replayed and each dataset's rows are converted both
ways: the batches must be equal, schema included. Odd values must make the builder step aside (None)
so that ``rows_to_arrow`` decides about them as it always did.
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from collectors.capture import replay_capture
from collectors.registry import exchange_ids, get_dialect
from schemas import (
    RECORD_DATASETS,
    _row_struct,
    arrow_schema,
    arrow_to_rows,
    base_arrow_schema,
    base_width,
    rows_to_arrow,
)
from schemas.columns import build_batch

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
RECORDINGS = sorted(
    p for ex in exchange_ids() for p in (SAMPLES / ex).glob("*.capture.gz") if (SAMPLES / ex).is_dir()
)

TRADE = (
    "binance",
    "ETH-USDT",
    1_723_161_254_000_000_000,
    1_723_161_254_024_619_568,
    "42",
    2683.8,
    0.5,
    "buy",
    8,
)
BOOK = ("binance", "ETH-USDT", None, 1_723_161_254_024_619_568, "bid", 2683.8, 0.0, False, 35346513505, 0, 2)


def struct_conversion(dataset: str, rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_struct_array(pa.array(rows, type=_row_struct(dataset, base_width(dataset))))


def test_there_are_recordings() -> None:
    assert len(RECORDINGS) >= 3, RECORDINGS


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recording_converts_to_the_same_batches(path: Path) -> None:
    buf = replay_capture(get_dialect(path.parent.name).new_normaliser(), path)
    converted = 0
    for dataset in RECORD_DATASETS:
        rows = buf.rows(dataset)
        if not rows:
            continue
        built = build_batch(base_arrow_schema(dataset), rows)
        assert built is not None, dataset
        reference = struct_conversion(dataset, rows)
        assert built.schema.equals(reference.schema) and built.equals(reference), dataset
        converted += len(rows)
    assert converted > 0


def test_nulls_in_nullable_columns_and_int_subclasses() -> None:
    class Flag(enum.IntFlag):
        A = 1
        B = 2

    rows = [
        TRADE,
        (*TRADE[:2], None, TRADE[3] + 1, "43", 2683.9, 1.25, None, Flag.A | Flag.B),
        (*TRADE[:2], -5, TRADE[3] + 2, "", float("inf"), 0.0, "sell", 0),
    ]
    built = build_batch(base_arrow_schema("trades"), rows)
    assert built is not None and built.equals(struct_conversion("trades", rows))
    assert arrow_to_rows(built) == rows
    book = [BOOK, (*BOOK[:7], True, None, 1, 16)]
    built = build_batch(base_arrow_schema("book"), book)
    assert built is not None and built.equals(struct_conversion("book", book))
    assert arrow_to_rows(built) == book


def test_many_distinct_strings_and_many_rows() -> None:
    rows = [
        (*TRADE[:3], TRADE[3] + i, str(i), 1.0 + i, 0.5, "buy" if i % 3 else None, i % 5)
        for i in range(5_000)
    ]
    built = build_batch(base_arrow_schema("trades"), rows)
    assert built is not None and built.equals(struct_conversion("trades", rows))


@pytest.mark.parametrize(
    "row",
    [
        (*TRADE[:5], "2683.8", *TRADE[6:]),  # a string where a double belongs (numpy would parse it)
        (*TRADE[:5], 2683, *TRADE[6:]),  # an int in a double column: pyarrow's rules apply
        (*TRADE[:8], True),  # a bool in an int column
        (*TRADE[:8], 1.5),  # a float in an int column (numpy would truncate it)
        (*TRADE[:8], 2**31),  # outside int32
        (*TRADE[:3], 2**63, *TRADE[4:]),  # outside int64
        (None, *TRADE[1:]),  # None in a non-nullable column
        (*TRADE[:4], "\ud800", *TRADE[5:]),  # not encodable as UTF-8
        TRADE[:-1],  # wrong width
        list(TRADE),  # a list, not a tuple
    ],
)
def test_odd_values_are_left_to_rows_to_arrow(row: Any) -> None:
    assert build_batch(base_arrow_schema("trades"), [TRADE, row]) is None


def test_empty_rows() -> None:
    for dataset in RECORD_DATASETS:
        built = build_batch(arrow_schema(dataset), [])
        if any(pa.types.is_binary(f.type) for f in arrow_schema(dataset)):
            # the raw archive's blobs are left to pyarrow (the builder steps aside), never mis-built
            assert built is None
            continue
        assert built is not None and built.num_rows == 0 and built.schema.equals(arrow_schema(dataset))


def _modules_after(code: str, pure: bool = True) -> str:
    script = (
        f"import sys\nimport schemas\nimport schemas.columns as c\n{code}\nprint('pandas' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "TICKTAPE_PURE_PYTHON"}
    if pure:
        env["TICKTAPE_PURE_PYTHON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
        env=env,
    ).stdout.strip()


def test_rows_to_arrow_does_not_import_pandas_until_the_budget_is_spent() -> None:
    """The reference (TICKTAPE_PURE_PYTHON=1) builds columns here until its budget is spent, then
    pyarrow's conversion (which imports pandas) takes over; the compiled conversion never needs it."""
    rows = f"[{BOOK!r}] * 1000"
    assert _modules_after(f"schemas.rows_to_arrow('book', {rows})") == "False"
    spent = f"c._budget[0] = 999\nschemas.rows_to_arrow('book', {rows})"
    assert _modules_after(spent) == "True"
    compiled = f"from streaming import codec\nassert codec._native() is not None\n{spent}"
    assert _modules_after(compiled, pure=False) == "False"


def test_rows_to_arrow_results_do_not_depend_on_the_path() -> None:
    rows = [TRADE, (*TRADE[:2], None, TRADE[3] + 1, "43", 2683.9, 1.25, None, 0)]
    converted = rows_to_arrow("trades", rows)
    assert converted.column("replica").null_count == len(rows)
    assert converted.select(base_arrow_schema("trades").names).equals(struct_conversion("trades", rows))
