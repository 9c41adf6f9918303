"""Great Expectations suites over one closed day of the lake.

GE 1.x's DuckDB SQL data source is broken, so each (dataset, exchange) of the day is read with DuckDB
(the connection the caller opened over the lake: a local directory or S3) into pandas DataFrames of
whole symbols (at most ``max_rows`` rows each, so a busy day fits in memory), with a few derived
columns, and validated by a pandas data source:

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

Data Docs offline: GE's pages load Bootstrap, jQuery, Font Awesome and Vega from CDNs, and its index
fills its tables with jQuery, so offline they render unstyled and the index is empty. After the run,
every page loses its remote ``<link>``/``<script>``/``<img>`` tags and gets a small inline stylesheet,
and the index becomes a plain list of the day's validation and expectation pages with their verdicts:
nothing is fetched from the network. GE logs at INFO while it is imported (its API-docs decorators);
its loggers are set to WARNING before the import.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import re
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

VALIDATED = (
    "trades",
    "book",
    "bbo",
    "feed_events",
    "instruments",
    "funding",
    "mark_price",
    "open_interest",
    "liquidations",
)
#: datasets without an exchange time (no latency or ordering expectations)
_UNTIMED = ("feed_events", "instruments")
#: rows of one DataFrame handed to GE (a day is validated in chunks of whole symbols)
DEFAULT_CHUNK_ROWS = 5_000_000


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
    if dataset not in _UNTIMED:
        # previous exchange time of the same symbol in receive order (ties broken by exchange time)
        derived.append(
            "epoch_ns(ts_exchange) - lag(epoch_ns(ts_exchange)) OVER "
            "(PARTITION BY symbol ORDER BY ts_recv, ts_exchange) AS ts_exchange_step_ns"
        )
        # the day's floor of this exchange and dataset is the first parameter
        derived.append(
            f"(epoch_ns(ts_recv) - epoch_ns(ts_exchange) - $floor) / {NS}.0 AS latency_above_floor_s"
        )
        derived.append("CAST((flags & 1) <> 0 AS INTEGER) AS outdated")
    if dataset == "bbo":
        derived.append("ask_price - bid_price AS spread")
    where = "exchange = $exchange AND date = CAST($date AS DATE)"
    if dataset not in _UNTIMED:
        where += " AND list_contains($symbols, symbol)"
    return f"SELECT {', '.join(cols + derived)} FROM {dataset} WHERE {where} ORDER BY symbol, ts_recv"


def _symbol_chunks(
    con: duckdb.DuckDBPyConnection, dataset: str, exchange: str, date: str, max_rows: int
) -> list[list[str]]:
    """Whole symbols grouped into chunks of at most ``max_rows`` rows (a bigger symbol is a chunk of its own)."""
    counts = con.execute(
        f"SELECT symbol, count(*) FROM {dataset} WHERE exchange = ? AND date = CAST(? AS DATE) "
        "GROUP BY symbol ORDER BY symbol",
        [exchange, date],
    ).fetchall()
    chunks: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for symbol, n in counts:
        if current and rows + n > max_rows:
            chunks.append(current)
            current, rows = [], 0
        current.append(symbol)
        rows += n
    if current:
        chunks.append(current)
    return chunks


def _day_floor_ns(con: duckdb.DuckDBPyConnection, dataset: str, exchange: str, date: str) -> int:
    """The 1 % quantile of raw latency of one dataset, exchange and day (0 without exchange times)."""
    row = con.execute(
        f"SELECT quantile_disc(epoch_ns(ts_recv) - epoch_ns(ts_exchange), 0.01) FROM {dataset} "
        "WHERE exchange = ? AND date = CAST(? AS DATE)",
        [exchange, date],
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


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
    elif dataset == "instruments":
        out += [
            e.ExpectColumnValuesToBeInSet(column="kind", value_set=["spot", "perpetual", "future", "option"]),
            e.ExpectColumnValuesToBeBetween(column="tick_size", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="lot_size", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="contract_size", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeInSet(column="option_type", value_set=["call", "put"]),
        ]
    elif dataset == "funding":
        # a funding rate is a small fraction per interval; venues cap it far below 100 %
        out += [e.ExpectColumnValuesToBeBetween(column="funding_rate", min_value=-1, max_value=1)]
    elif dataset == "mark_price":
        out += [
            e.ExpectColumnValuesToBeBetween(column="mark_price", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="index_price", min_value=0, strict_min=True),
        ]
    elif dataset == "open_interest":
        out += [e.ExpectColumnValuesToBeBetween(column="open_interest", min_value=0)]
    elif dataset == "liquidations":
        out += [
            e.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeBetween(column="size", min_value=0, strict_min=True),
            e.ExpectColumnValuesToBeInSet(column="side", value_set=["buy", "sell"]),
        ]
    if dataset not in _UNTIMED:
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
    max_rows: int = DEFAULT_CHUNK_ROWS,
) -> DayReport:
    """Runs every suite on every (dataset, exchange) present on ``date`` and writes the results.

    Market data is handed to GE in chunks of whole symbols of at most ``max_rows`` rows, so memory
    stays bounded on a busy day; every expectation holds per symbol, so chunking changes no verdict
    except the outdated share, which is then required of every chunk."""
    dt.date.fromisoformat(date)  # ValueError on a bad date, before anything is written
    cfg = config or QualityConfig()
    # GE would otherwise try to reach its analytics service: ticktape never calls out.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GE logs every store write at INFO, and hundreds of lines while it is imported: keep the command's
    # output readable (before the import; --log-level DEBUG keeps them).
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    if out_dir.exists():
        shutil.rmtree(out_dir)  # a re-run replaces the day's results, it does not pile up
    out_dir.mkdir(parents=True)
    from great_expectations.data_context.types.base import ProgressBarsConfig

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
            name = f"{dataset}.{exchange}"
            sql = _frame_sql(dataset)
            params: dict[str, Any] = {"exchange": exchange, "date": date}
            chunks: list[list[str] | None] = [None]
            if dataset not in _UNTIMED:
                params["floor"] = _day_floor_ns(con, dataset, exchange, date)
                chunks = list(_symbol_chunks(con, dataset, exchange, date, max_rows))
            checkpoint = None
            total = SuiteResult(dataset, exchange, 0, True, 0)
            for symbols in chunks:
                if symbols is not None:
                    params["symbols"] = symbols
                frame = con.execute(sql, params).df()
                if checkpoint is None:
                    checkpoint = _checkpoint(
                        context, source, name, date, _suite_expectations(dataset, list(frame.columns), cfg)
                    )
                result = checkpoint.run(batch_parameters={"dataframe": frame})
                part = _summarise(dataset, exchange, len(frame), result)
                where = f"{symbols[0]}..{symbols[-1]}" if symbols else None
                total.rows += part.rows
                total.evaluated += part.evaluated
                total.success = total.success and part.success
                total.failed += [{**f, "symbols": where} for f in part.failed]
                del frame
            suites.append(total)
            log.info(
                "%s %s: %s (%d chunks)", date, name, "passed" if total.success else "FAILED", len(chunks)
            )
    docs = out_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    if docs.is_file():
        make_docs_offline(docs.parent, date, suites)
    report = DayReport(date, out_dir, suites, docs if docs.is_file() else None)
    (out_dir / "results.json").write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
    return report


def _checkpoint(context: Any, source: Any, name: str, date: str, expectations: list[Any]) -> Any:
    """A checkpoint that validates one dataframe against a new suite of ``expectations``."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    asset = source.add_dataframe_asset(name=name)
    batch = asset.add_batch_definition_whole_dataframe("day")
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}.{date}", data=batch, suite=suite)
    )
    return context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}.{date}",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs")],
            result_format="SUMMARY",
        )
    )


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


#: A tag that loads something from the network (CDN stylesheets and scripts, GE's hosted logos).
_REMOTE_TAG_RE = re.compile(
    r"<(link|script|img)\b[^>]*\b(?:href|src)\s*=\s*[\"']?(?:https?:)?//[^>]*>(?:\s*</script>)?", re.I
)
#: Enough of Bootstrap's classes, as GE's pages use them, to read them offline.
OFFLINE_CSS = """
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #1a202c; background: #f7fafc; }
a { color: #2b6cb0; } .d-none, footer, .navbar-brand { display: none; }
.ge-breadcrumbs.d-none { display: flex; gap: 12px; list-style: none; margin: 0; padding: 0; }
.navbar a, .navbar li { color: #e2e8f0; }
.navbar { display: flex; align-items: center; padding: 8px 20px; background: #1a202c; color: #fff; }
.container-fluid { padding: 12px 20px; } .row { display: flex; flex-wrap: wrap; }
.col-12 { flex: 0 0 100%; } .col-6 { flex: 0 0 50%; } .col-md-2 { flex: 0 0 16%; max-width: 16%; }
.col-md-10 { flex: 0 0 80%; max-width: 80%; padding-left: 16px; }
.nav { list-style: none; padding: 0; margin: 0; } .nav-link { display: block; padding: 2px 6px; }
.ge-navigation-sidebar-container { position: sticky; top: 0; background: #fff; padding: 6px; }
.table, table { border-collapse: collapse; background: #fff; margin: 6px 0; }
.table td, .table th, table.offline td, table.offline th { border: 1px solid #e2e8f0; padding: 4px 8px;
  text-align: left; vertical-align: top; }
.table-responsive { overflow-x: auto; }
.card { background: #fff; border: 1px solid #e2e8f0; border-radius: 4px; margin: 8px 0; }
.card-header { background: #edf2f7; padding: 6px 10px; font-weight: 600; } .card-body { padding: 6px 10px; }
.alert { padding: 6px 10px; border-radius: 4px; background: #edf2f7; margin: 4px 0; }
.badge { display: inline-block; padding: 1px 6px; border-radius: 3px; background: #e2e8f0; font-size: 12px; }
.text-danger, .failed { color: #c53030; font-weight: 600; } .text-success, .passed { color: #1f9d55; }
.fas.fa-check-circle::before { content: "\\2714"; } .fas.fa-times::before { content: "\\2718"; }
"""


def make_docs_offline(site: Path, date: str, suites: list[SuiteResult]) -> None:
    """Makes a Data Docs site readable offline (module docstring): no remote asset, an inline
    stylesheet, and an index that needs no script."""
    for page in site.rglob("*.html"):
        text = _REMOTE_TAG_RE.sub("", page.read_text(encoding="utf-8"))
        text = text.replace("</head>", f"<style>{OFFLINE_CSS}</style></head>", 1)
        page.write_text(text, encoding="utf-8")
    verdict = {(s.dataset, s.exchange): s.success for s in suites}
    items = []
    for page in sorted(site.glob("validations/*/*/**/*.html")):
        rel = page.relative_to(site)
        dataset, exchange = rel.parts[1], rel.parts[2]
        ok = verdict.get((dataset, exchange))
        status = "-" if ok is None else ("passed" if ok else "FAILED")
        suite = site / "expectations" / dataset / f"{exchange}.html"
        suite_link = (
            f'<a href="{html.escape(suite.relative_to(site).as_posix())}">suite</a>'
            if suite.is_file()
            else ""
        )
        items.append(
            f"<tr><td>{html.escape(dataset)}.{html.escape(exchange)}</td>"
            f'<td class="{"passed" if ok else "failed" if ok is not None else ""}">{status}</td>'
            f'<td><a href="{html.escape(rel.as_posix())}">{html.escape(rel.parts[-2])}</a></td><td>{suite_link}</td></tr>'
        )
    (site / "index.html").write_text(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>ticktape validation {html.escape(date)}</title><style>{OFFLINE_CSS}</style></head><body>"
        f'<div class="navbar">ticktape validation · {html.escape(date)}</div><div class="container-fluid">'
        "<p>Great Expectations Data Docs of the day, one validation per dataset and exchange.</p>"
        '<table class="offline"><thead><tr><th>suite</th><th>result</th><th>validation</th>'
        f"<th>expectations</th></tr></thead><tbody>{''.join(items)}</tbody></table></div></body></html>\n",
        encoding="utf-8",
    )
