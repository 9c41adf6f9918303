"""Great Expectations suites over one closed day of the lake.

GE 1.x's DuckDB SQL data source is broken, so each (dataset, exchange) of the day is read with DuckDB
(the connection the caller opened over the lake: a local directory or S3) into a pandas DataFrame,
with a few derived columns, and validated by a pandas data source:

* schema: exactly the dataset's columns (plus the derived ones); required fields never null;
* trades: price > 0, size > 0, side ``buy``/``sell`` (or null), ``(symbol, trade_id)`` unique;
* book: price > 0, size >= 0, side ``bid``/``ask``, epoch >= 0;
* bbo: prices > 0, sizes >= 0, never crossed (``ask_price - bid_price >= 0``);
* timestamps ordered per symbol: in receive order, the exchange timestamp never goes back
  (99.9 %: exchanges do occasionally reorder);
* latency within bounds: 99 % of messages within the outdated cutoff above the day's latency floor
  (the 1 % quantile of raw latency, which removes a host clock offset), and at most 1 % OUTDATED.

Results go to ``<out>/results.json`` (our summary) and GE's own stores and Data Docs under
``<out>/gx/`` (open ``<out>/gx/uncommitted/data_docs/local_site/index.html``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from schemas import arrow_schema

from .scoring import NS, QualityConfig

log = logging.getLogger(__name__)

#: Share of messages that must lie within the outdated cutoff above the floor.
LATENCY_WITHIN_CUTOFF = 0.99
#: Highest share of OUTDATED messages in a day.
MAX_OUTDATED_RATIO = 0.01
#: Share of consecutive messages (per symbol, in receive order) whose exchange time must not go back.
ORDERED_MOSTLY = 0.999

VALIDATED = ("trades", "book", "bbo", "feed_events")


@dataclass
class SuiteResult:
    """Outcome of one suite on one (dataset, exchange) of the day."""

    dataset: str
    exchange: str
    rows: int
    success: bool
    evaluated: int
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DayReport:
    """Every suite of the day, and where the results went."""

    date: str
    out_dir: Path
    suites: list[SuiteResult]
    data_docs: Path | None

    @property
    def success(self) -> bool:
        """True when every suite passed (and there was something to validate)."""
        return bool(self.suites) and all(s.success for s in self.suites)

    def to_json(self) -> dict[str, Any]:
        """The ``results.json`` document."""
        return {
            "date": self.date,
            "success": self.success,
            "data_docs": str(self.data_docs) if self.data_docs else None,
            "suites": [
                {
                    "dataset": s.dataset,
                    "exchange": s.exchange,
                    "rows": s.rows,
                    "success": s.success,
                    "evaluated_expectations": s.evaluated,
                    "failed_expectations": s.failed,
                }
                for s in self.suites
            ],
        }


def _frame_sql(dataset: str) -> str:
    """The SELECT of one dataset, exchange and day, with the derived columns its suite checks."""
    cols = []
    for f in arrow_schema(dataset):
        if f.name in ("ts_exchange", "ts_recv"):
            cols.append(f"epoch_ns({f.name}) AS {f.name}")
        else:
            cols.append(f'"{f.name}"')
    derived = []
    if dataset != "feed_events":
        # previous exchange time of the same symbol in receive order (ties broken by exchange time)
        derived.append(
            "epoch_ns(ts_exchange) - lag(epoch_ns(ts_exchange)) OVER "
            "(PARTITION BY symbol ORDER BY ts_recv, ts_exchange) AS ts_exchange_step_ns"
        )
        derived.append(
            "(epoch_ns(ts_recv) - epoch_ns(ts_exchange) - quantile_disc(epoch_ns(ts_recv) - epoch_ns(ts_exchange), "
            f"0.01) OVER ()) / {NS}.0 AS latency_above_floor_s"
        )
        derived.append("CAST((flags & 1) <> 0 AS INTEGER) AS outdated")
    if dataset == "bbo":
        derived.append("ask_price - bid_price AS spread")
    return (
        f"SELECT {', '.join(cols + derived)} FROM {dataset} "
        "WHERE exchange = ? AND date = CAST(? AS DATE) ORDER BY symbol, ts_recv"
    )


def _suite_expectations(dataset: str, columns: list[str], config: QualityConfig) -> list[Any]:
    import great_expectations as gx

    e = gx.expectations
    schema = arrow_schema(dataset)
    out: list[Any] = [e.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True)]
    out += [e.ExpectColumnValuesToNotBeNull(column=f.name) for f in schema if not f.nullable]
    if dataset == "trades":
        out += [
            e.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="size", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeInSet(column="side", value_set=["buy", "sell"]),
            e.ExpectCompoundColumnsToBeUnique(column_list=["symbol", "trade_id"]),
        ]
    elif dataset == "book":
        out += [
            e.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="size", min_value=0),
            e.ExpectColumnValuesToBeInSet(column="side", value_set=["bid", "ask"]),
            e.ExpectColumnValuesToBeBetween(column="epoch", min_value=0),
        ]
    elif dataset == "bbo":
        out += [
            e.ExpectColumnValuesToBeBetween(column="bid_price", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="ask_price", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="bid_size", min_value=0),
            e.ExpectColumnValuesToBeBetween(column="ask_size", min_value=0),
            e.ExpectColumnValuesToBeBetween(column="spread", min_value=0),
        ]
    if dataset != "feed_events":
        out += [
            e.ExpectColumnValuesToBeBetween(column="ts_exchange_step_ns", min_value=0, mostly=ORDERED_MOSTLY),
            e.ExpectColumnValuesToBeBetween(
                column="latency_above_floor_s",
                max_value=config.outdated_cutoff_s,
                mostly=LATENCY_WITHIN_CUTOFF,
            ),
            e.ExpectColumnMeanToBeBetween(column="outdated", max_value=MAX_OUTDATED_RATIO),
        ]
    return out


def default_out_dir(lake: str, date: str) -> Path:
    """Where results go by default: ``<lake>-validation/<date>/`` beside a local lake."""
    if "://" in lake:
        raise ValueError("give --out for a lake that is not a local directory")
    path = Path(lake).resolve()
    return path.parent / f"{path.name}-validation" / date


def validate_day(
    con: duckdb.DuckDBPyConnection,
    date: str,
    out_dir: Path,
    config: QualityConfig | None = None,
    exchanges: list[str] | None = None,
) -> DayReport:
    """Runs every suite on every (dataset, exchange) present on ``date`` and writes the results."""
    dt.date.fromisoformat(date)  # ValueError on a bad date, before anything is written
    cfg = config or QualityConfig()
    # GE would otherwise try to reach its analytics service: ticktape never calls out.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    if out_dir.exists():
        shutil.rmtree(out_dir)  # a re-run replaces the day's results, it does not pile up
    out_dir.mkdir(parents=True)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GE logs every store write at INFO and draws progress bars: keep the command's output readable.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="file", project_root_dir=str(out_dir))
    context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    source = context.data_sources.add_pandas("lake")
    suites: list[SuiteResult] = []
    for dataset in VALIDATED:
        present = [
            row[0]
            for row in con.execute(
                f"SELECT DISTINCT exchange FROM {dataset} WHERE date = CAST(? AS DATE) ORDER BY 1", [date]
            ).fetchall()
        ]
        for exchange in present:
            if exchanges and exchange not in exchanges:
                continue
            frame = con.execute(_frame_sql(dataset), [exchange, date]).df()
            name = f"{dataset}.{exchange}"
            asset = source.add_dataframe_asset(name=name)
            batch = asset.add_batch_definition_whole_dataframe("day")
            suite = context.suites.add(gx.ExpectationSuite(name=name))
            for expectation in _suite_expectations(dataset, list(frame.columns), cfg):
                suite.add_expectation(expectation)
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{name}.{date}", data=batch, suite=suite)
            )
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name=f"{name}.{date}",
                    validation_definitions=[definition],
                    actions=[UpdateDataDocsAction(name="data_docs")],
                    result_format="SUMMARY",
                )
            )
            result = checkpoint.run(batch_parameters={"dataframe": frame})
            suites.append(_summarise(dataset, exchange, len(frame), result))
            log.info("%s %s: %s", date, name, "passed" if suites[-1].success else "FAILED")
    docs = out_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    report = DayReport(date, out_dir, suites, docs if docs.is_file() else None)
    (out_dir / "results.json").write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return report


def _summarise(dataset: str, exchange: str, rows: int, result: Any) -> SuiteResult:
    evaluated = 0
    failed: list[dict[str, Any]] = []
    success = bool(result.success)
    for run in result.run_results.values():
        for r in run.results:
            evaluated += 1
            if r.success:
                continue
            config = r.expectation_config
            kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
            observed = r.result or {}
            failed.append(
                {
                    "expectation": config.type,
                    "kwargs": _jsonable(kwargs),
                    "unexpected_count": observed.get("unexpected_count"),
                    "unexpected_percent": observed.get("unexpected_percent"),
                    "observed_value": _jsonable(observed.get("observed_value")),
                    "partial_unexpected_list": _jsonable(
                        (observed.get("partial_unexpected_list") or [])[:10]
                    ),
                }
            )
    return SuiteResult(dataset, exchange, rows, success, evaluated, failed)


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY))
