"""The DuckDB catalog of a lake: one view per dataset, over a local directory or an S3 prefix.

Each view reads ``<lake>/<dataset>/**/*.parquet`` with Hive partitioning, so ``exchange`` and ``date``
filters prune whole directories. Facts about DuckDB (2.0) that this relies on, checked here:

- The files carry an ``exchange`` column *and* sit under ``exchange=<id>/``; DuckDB then exposes one
  ``exchange`` column whose value comes from the directory name, and filters on it prune files.
  The partition types are pinned (``exchange`` VARCHAR, ``date`` DATE) so that an exchange id that
  looks like a number never turns into one.
- Timestamps (``timestamp[ns, tz=UTC]`` in Parquet) come back as ``TIMESTAMPTZ_NS``: nanoseconds kept.
- S3 goes through an ``s3fs`` file system registered with ``register_filesystem``, so no DuckDB
  extension is downloaded or loaded (the catalog works offline); credentials follow the standard AWS
  chain (environment, shared config and credentials files, instance or container roles).

A dataset without any file still gets a view: empty, with the columns it will have.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from schemas import DATASETS, arrow_schema

from .compact import publication_sequence

log = logging.getLogger(__name__)

#: Hive partition keys of the lake and their DuckDB types.
PARTITION_TYPES: dict[str, str] = {"exchange": "VARCHAR", "date": "DATE"}
#: Attempts for a query that raced a compaction (a listed file vanished before it was opened).
QUERY_ATTEMPTS = 5
#: Attempts for a query during which compactions kept publishing.
SEQLOCK_ATTEMPTS = 50


class LakeBusyError(RuntimeError):
    """Compactions kept publishing while a query ran; no consistent result could be taken."""


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.binary(): "BLOB",
}


@dataclass(frozen=True, slots=True)
class LakeLocation:
    """Where a lake lives: a local directory, or ``s3://bucket/prefix``."""

    url: str
    endpoint_url: str | None = None

    @property
    def is_s3(self) -> bool:
        """True for an S3 lake."""
        return self.url.startswith("s3://")

    def dataset_glob(self, dataset: str) -> str:
        """The Parquet glob of one dataset."""
        return f"{self.url.rstrip('/')}/{dataset}/**/*.parquet"


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> ``(bucket, prefix)`` (prefix without slashes at either end)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def duckdb_type(typ: pa.DataType) -> str:
    """The DuckDB type that reading a lake column of Arrow type ``typ`` yields."""
    if pa.types.is_timestamp(typ):
        return "TIMESTAMPTZ_NS" if typ.tz else "TIMESTAMP_NS"
    try:
        return _DUCKDB_TYPES[typ]
    except KeyError:
        raise ValueError(f"no DuckDB mapping for Arrow type {typ}") from None


def empty_view_sql(dataset: str) -> str:
    """A ``SELECT`` with no rows and exactly the columns a dataset's view has (schema + partitions)."""
    cols = [f'CAST(NULL AS {duckdb_type(f.type)}) AS "{f.name}"' for f in arrow_schema(dataset)]
    names = set(arrow_schema(dataset).names)
    cols += [f'CAST(NULL AS {t}) AS "{k}"' for k, t in PARTITION_TYPES.items() if k not in names]
    return "SELECT " + ", ".join(cols) + " WHERE false"


def dataset_view_sql(location: LakeLocation, dataset: str) -> str:
    """The ``SELECT`` behind a dataset's view."""
    glob = location.dataset_glob(dataset).replace("'", "''")
    types = ", ".join(f"'{k}': '{t}'" for k, t in PARTITION_TYPES.items())
    # union_by_name: files written before the replica column existed read it as null; the union with
    # the empty, fully typed frame gives the view every column even when no file has it yet
    return (
        f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true, hive_types = {{{types}}},"
        f" union_by_name = true) UNION ALL BY NAME {empty_view_sql(dataset)}"
    )


def s3_filesystem(endpoint_url: str | None = None) -> Any:
    """An ``s3fs`` file system using the standard AWS credential chain."""
    import s3fs  # deferred: only S3 lakes need it

    client_kwargs: dict[str, Any] = {}
    if endpoint_url:
        client_kwargs["endpoint_url"] = endpoint_url
    return s3fs.S3FileSystem(client_kwargs=client_kwargs, skip_instance_cache=True)


def _is_vanished_file(exc: duckdb.Error) -> bool:
    text = str(exc)
    return isinstance(exc, duckdb.IOException) and (
        "No such file" in text or "No files found" in text or "Cannot open file" in text
    )


class Catalog:
    """A DuckDB connection with one view per dataset of a lake."""

    def __init__(self, location: LakeLocation, threads: int | None = None) -> None:
        self.location = location
        config: dict[str, Any] = {
            # Offline by design: never fetch or load extensions behind the user's back.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if threads:
            config["threads"] = threads
        self.con = duckdb.connect(config=config)
        # Several queries of one session (book_at runs a few) read the same file footers. (A setting of
        # the built-in parquet reader: it cannot go into the connect-time config.)
        self.con.execute("SET parquet_metadata_cache = true")
        #: the directory of a local lake (whose compactions the queries watch), None for S3
        self.local_root: Path | None = None if location.is_s3 else Path(location.url)
        if location.is_s3:
            split_s3_url(location.url)  # validates early, with a readable message
            self.con.register_filesystem(s3_filesystem(location.endpoint_url))
        #: datasets whose view is empty because no file existed when the catalog opened
        self.empty: list[str] = []
        for dataset in DATASETS:
            self._create_view(dataset)

    def _create_view(self, dataset: str) -> None:
        # Creating the view binds it, which expands the glob: no file is an error we turn into an
        # empty view with the right columns.
        try:
            self._with_retry(
                lambda: self.con.execute(
                    f'CREATE OR REPLACE VIEW "{dataset}" AS {dataset_view_sql(self.location, dataset)}'
                )
            )
        except duckdb.IOException as exc:
            if "No files found" not in str(exc):
                raise
            self.con.execute(f'CREATE OR REPLACE VIEW "{dataset}" AS {empty_view_sql(dataset)}')
            self.empty.append(dataset)

    def _with_retry(self, fn: Any) -> Any:
        # A compaction that swaps a partition while a query runs can make a listed file vanish;
        # the next attempt lists the new files. Only that error is retried.
        for attempt in range(1, QUERY_ATTEMPTS + 1):
            try:
                return fn()
            except duckdb.IOException as exc:
                if attempt == QUERY_ATTEMPTS or not _is_vanished_file(exc) or "No files found" in str(exc):
                    raise
                log.info("query raced a compaction (%s); retrying", str(exc).splitlines()[0])
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def query(self, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Runs SQL (with ``?`` parameters bound from ``params``) and returns the result as an Arrow table.

        On a local lake the query runs between two reads of the compaction's publication sequence
        (a seqlock): when a compaction swapped a partition meanwhile, the result may rest on a partial
        listing, so the query runs again.
        """
        if self.local_root is None:
            result: pa.Table = self._with_retry(lambda: self.con.sql(sql, params=params).to_arrow_table())
            return result
        for attempt in range(1, SEQLOCK_ATTEMPTS + 1):
            before, swapping = publication_sequence(self.local_root)
            if not swapping:
                result = self._with_retry(lambda: self.con.sql(sql, params=params).to_arrow_table())
                if publication_sequence(self.local_root) == (before, False):
                    return result
            log.info("a compaction published while the query ran (attempt %d); running it again", attempt)
            time.sleep(min(0.01 * attempt, 0.2))
        raise LakeBusyError(
            f"a compaction kept publishing during {SEQLOCK_ATTEMPTS} attempts of the query; try again"
        )

    def close(self) -> None:
        """Closes the connection."""
        self.con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_catalog(lake: str, endpoint_url: str | None = None, threads: int | None = None) -> Catalog:
    """Opens a catalog over a local lake directory or an ``s3://bucket/prefix`` lake."""
    if not lake.startswith("s3://"):
        path = Path(lake)
        if not path.is_dir():
            raise FileNotFoundError(f"lake directory not found: {lake}")
        lake = str(path.resolve())
    return Catalog(LakeLocation(lake, endpoint_url), threads=threads)
