"""Deployment configuration: one TOML file, environment variables and command-line flags.

Every setting has a dotted key (``transport.kafka.bootstrap``), an environment variable derived from
it (``TICKTAPE_TRANSPORT_KAFKA_BOOTSTRAP``) and, where a command takes it, a flag
(``--kafka-bootstrap``). Values are resolved in this order, later wins::

    built-in defaults < configuration file < environment < command-line flags

Secrets (the Kafka SASL password; AWS credentials come from the standard AWS chain) are read from the
environment only: a secret written in the file is an error, so a ConfigMap can never leak one.

Errors are collected, never raised one at a time: :class:`ConfigError` carries every problem with its
location (``ticktape.toml:12: collectors[1].exchange: unknown exchange 'foo' (known: ...)``), which is
what ``ticktape config validate`` prints.

Commands take ``--config FILE`` through :func:`enable_config`, called once at the end of their
``register``: it maps each of the command's flags to its key (shared keys such as ``lake.path``, or
``<command>.<dest>`` for flags only that command has), so every flag is settable from the file and
from the environment without the command knowing about configuration at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import inspect
import logging
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.base import CHANNELS, DEFAULT_RECYCLE_AFTER_S, DEFAULT_STALE_AFTER_S, DialectOptions
from collectors.events import Limits
from collectors.instruments import DEFAULT_INSTRUMENTS_REFRESH_S, is_pattern
from collectors.raw import RAW_RETENTION_DAYS, RawSettings
from collectors.registry import exchange_ids
from quality.scoring import QualityConfig
from streaming.base import KAFKA_DEFAULT_COMPRESSION, QUEUE_POLICIES
from streaming.local import FSYNC_POLICIES
from streaming.replica import check_replica_name

ENV_PREFIX = "TICKTAPE_"
#: Environment variable naming the configuration file when ``--config`` is not given.
CONFIG_ENV = "TICKTAPE_CONFIG"
TRANSPORTS = ("local", "kafka", "kinesis")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Key names that look like credentials: refused in the file whatever section they are in.
_SECRET_NAME = re.compile(r"(password|secret|token|access_key|credential|api_key)", re.IGNORECASE)
#: user:password@ (or a bare token@) in a URL, and query parameters whose name says secret.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*)(?::[^@/\s]*)?@")
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;][A-Za-z0-9_.-]*(?:password|passwd|pwd|secret|token|key|signature|sig|credential|auth)"
    r"[A-Za-z0-9_.-]*)=(?P<value>[^&#\s'\"]+)",
    re.IGNORECASE,
)


def mask_secrets(text: str) -> str:
    """``text`` with credentials inside URLs replaced by ``***`` (``user:***@host``, ``?token=***``).

    Applied to everything ticktape prints: ``config show``, error messages and log lines.
    """
    if "://" not in text and "=" not in text:
        return text
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}=***", text)


def _mask_userinfo(m: re.Match[str]) -> str:
    has_password = ":" in m[0][len(m["scheme"]) :]
    # user:password@ keeps the user (it says which account); a bare name@ may itself be a token.
    return f"{m['scheme']}{m['user']}:***@" if has_password else f"{m['scheme']}***@"


class MaskSecretsFilter(logging.Filter):
    """A logging filter that masks URL credentials in every record it passes (see :func:`mask_secrets`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_secrets(logging.Formatter().formatException(record.exc_info))
        return True


#: Group names become container and Kubernetes object names, so they follow DNS label rules.
_GROUP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$")
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
#: ``all`` or a glob over symbols (``BTC-*``, ``*-PERP``, ``ETH/[UE]S?``)
_PATTERN = re.compile(r"^[A-Za-z0-9*?\[][A-Za-z0-9._:/*?\[\]!-]{0,63}$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._-]+:[0-9]{1,5}$")
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")


def setting(
    default: Any,
    doc: str,
    *,
    flags: tuple[str, ...] = (),
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field carrying what the validator and the reference need to know about a setting."""
    meta = {
        "doc": doc,
        "flags": flags,
        "choices": choices,
        "minimum": minimum,
        "maximum": maximum,
        "secret": secret,
    }
    if isinstance(default, list | tuple):
        value = tuple(default)
        return field(default_factory=lambda: value, metadata=meta, repr=not secret)
    if isinstance(default, dict):
        mapping = dict(default)
        return field(default_factory=lambda: dict(mapping), metadata=meta, repr=not secret)
    return field(default=default, metadata=meta, repr=not secret)


# --------------------------------------------------------------------------------------------------
# The typed configuration


@dataclass(frozen=True)
class DeploymentConfig:
    """Process-wide settings."""

    log_level: str = setting("INFO", "logging level", flags=("--log-level",), choices=LOG_LEVELS)


@dataclass(frozen=True)
class CollectConfig:
    """What one ``ticktape collect`` process captures.

    A container normally sets only ``group`` (``TICKTAPE_COLLECT_GROUP``) and runs the collectors of
    that group from the shared file; ``exchange``/``symbols`` describe one ad-hoc collector instead.
    """

    group: str | None = setting(
        None, "collector group this process runs (all groups when unset)", flags=("--group",)
    )
    exchange: str | None = setting(
        None, "run one collector for this exchange instead of a group", flags=("--exchange",)
    )
    symbols: tuple[str, ...] = setting(
        (), "symbols of the ad-hoc collector (comma-separated in env)", flags=("--symbols",)
    )
    channels: tuple[str, ...] = setting(CHANNELS, "channels of the ad-hoc collector", flags=("--channels",))
    ws_url: str | None = setting(
        None, "websocket endpoint override of the ad-hoc collector", flags=("--ws-url",)
    )
    rest_url: str | None = setting(
        None, "REST endpoint override of the ad-hoc collector", flags=("--rest-url",)
    )
    replica: str | None = setting(
        None,
        "replica name of the ad-hoc collector: several replicas capture the same venue and the sink "
        "keeps one copy (README, 'Replicas'); unset: a single collector",
        flags=("--replica",),
    )
    max_connection_age_s: float | None = setting(
        None,
        "rotate each connection (make-before-break) at this age in seconds; 0: never; unset: the "
        "exchange's own default (23 h where the venue closes connections at 24 h, else never)",
        flags=("--max-connection-age",),
        minimum=0,
    )
    instruments_refresh_s: float = setting(
        DEFAULT_INSTRUMENTS_REFRESH_S,
        "seconds between two fetches of each venue's instruments (new listings of 'all' and glob "
        "symbols are subscribed, delistings dropped); 0: only at start",
        flags=("--instruments-refresh-s",),
        minimum=0,
    )
    raw: bool = setting(
        False,
        "publish every received frame as the raw dataset (the raw archive: `ticktape renormalise` "
        "rebuilds a day from it); off by default: it adds the compressed frames to the transport and "
        "the lake (bench/RESULTS.md, 'Raw archive')",
        flags=("--raw",),
    )
    raw_batch_bytes: int = setting(
        RawSettings.batch_bytes,
        "raw archive: uncompressed bytes per batch (one raw record)",
        flags=("--raw-batch-bytes",),
        minimum=1024,
        maximum=4 * 1024 * 1024,
    )
    raw_batch_s: float = setting(
        RawSettings.batch_s,
        "raw archive: the longest a frame waits in a batch, seconds",
        flags=("--raw-batch-s",),
        minimum=0.01,
    )


@dataclass(frozen=True)
class LocalTransportConfig:
    """The embedded append-only log (one machine)."""

    log_dir: str | None = setting(
        None, "directory of the local log (required by the local transport)", flags=("--log",)
    )
    fsync: str = setting(
        "batch",
        "fsync after every entry, every written batch, or only on close",
        flags=("--fsync",),
        choices=FSYNC_POLICIES,
    )


@dataclass(frozen=True)
class KafkaConfig:
    """Kafka, MSK or Redpanda."""

    bootstrap: str | None = setting(
        None, "bootstrap servers, HOST:PORT[,HOST:PORT...] (required by kafka)", flags=("--kafka-bootstrap",)
    )
    topic_prefix: str = setting("ticktape.", "prefix of the per-dataset topics", flags=("--topic-prefix",))
    group_id: str = setting("ticktape-sink", "consumer group of the sinks")
    idempotence: str = setting(
        "auto",
        "idempotent producer: auto (on where the broker supports it), on, off",
        choices=("auto", "on", "off"),
    )
    linger_ms: int = setting(0, "producer linger before sending a batch", minimum=0)
    compression: str = setting(
        KAFKA_DEFAULT_COMPRESSION,
        "producer compression",
        choices=("none", "gzip", "snappy", "lz4", "zstd"),
    )
    security_protocol: str = setting(
        "PLAINTEXT", "Kafka security protocol", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    )
    sasl_mechanism: str = setting(
        "PLAIN", "SASL mechanism", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
    )
    sasl_username: str | None = setting(None, "SASL user name")
    sasl_password: str | None = setting(None, "SASL password (environment only)", secret=True)


@dataclass(frozen=True)
class KinesisConfig:
    """AWS Kinesis Data Streams (credentials from the standard AWS chain)."""

    stream: str | None = setting(None, "stream name (required by kinesis)", flags=("--kinesis-stream",))
    region: str | None = setting(None, "AWS region (AWS_REGION / the AWS chain when unset)")
    endpoint_url: str | None = setting(
        None, "AWS-compatible endpoint (LocalStack, moto)", flags=("--endpoint-url",)
    )


@dataclass(frozen=True)
class TransportConfig:
    """Between collectors and sinks."""

    kind: str = setting("local", "transport", flags=("--transport",), choices=TRANSPORTS)
    queue_policy: str = setting(
        "block", "what a full queue does", flags=("--queue-policy",), choices=QUEUE_POLICIES
    )
    local: LocalTransportConfig = field(default_factory=LocalTransportConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    kinesis: KinesisConfig = field(default_factory=KinesisConfig)


@dataclass(frozen=True)
class LakeConfig:
    """The Parquet lake (a directory: local disk or EFS/NFS)."""

    path: str = setting("lake", "lake root directory", flags=("--lake",))
    raw_retention_days: int = setting(
        RAW_RETENTION_DAYS,
        "days of raw archive kept (`ticktape compact` deletes older raw days); 0 keeps it forever",
        flags=("--raw-retention-days",),
        minimum=0,
    )
    raw_retention: dict[str, float] = setting(  # noqa: RUF009 - a field with a default factory
        {}, "per-exchange overrides of raw_retention_days, e.g. { binance = 90 }"
    )


@dataclass(frozen=True)
class S3Config:
    """Where the daily sync uploads closed days (credentials and region from the standard AWS chain)."""

    url: str | None = setting(None, "s3://BUCKET/PREFIX of the remote lake", flags=("--to",))
    endpoint_url: str | None = setting(
        None, "S3-compatible endpoint (MinIO, moto)", flags=("--endpoint-url",)
    )


def _field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comments above the fields of a dataclass: its own documentation of each field."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        match = re.match(r"^(\w+)\s*:", text)
        if match and pending:
            docs[match.group(1)] = " ".join(pending)
        pending = []
    return docs


#: Fields of :class:`quality.scoring.QualityConfig` that its source does not comment.
_QUALITY_DOCS = {
    "ok_score": "score at or above which an exchange is OK",
    "exclude_score": "score below which an exchange is EXCLUDE (also when silent or stalled)",
    "event_age_limits": "per-exchange overrides of event_age_limit_s, e.g. { okx = 8 }",
}


def _thresholds_class() -> type:
    """``[thresholds]``: the collectors' staleness limits and every field of QualityConfig.

    Derived from :class:`quality.scoring.QualityConfig`, so a threshold the quality layer adds is
    configurable (file and environment) without a change here.
    """
    fields_: list[tuple[str, Any, Any]] = [
        (
            "stale_book_s",
            float,
            setting(
                DEFAULT_STALE_AFTER_S["book"],
                "book and bbo channels silent this long: stale",
                flags=("--stale-book-s",),
                minimum=0.1,
            ),
        ),
        (
            "stale_trades_s",
            float,
            setting(
                DEFAULT_STALE_AFTER_S["trades"],
                "trades silent this long: stale (the collector adapts it for quiet symbols)",
                flags=("--stale-trades-s",),
                minimum=0.1,
            ),
        ),
        (
            "recycle_after_s",
            float,
            setting(
                DEFAULT_RECYCLE_AFTER_S,
                "recycle a connection stale this long (0: never)",
                flags=("--recycle-after-s",),
                minimum=0,
            ),
        ),
    ]
    limits = Limits()
    fields_ += [
        (
            "max_price",
            float,
            setting(limits.max_price, "prices at or above this are parse errors (sanity bound)", minimum=0),
        ),
        (
            "max_size",
            float,
            setting(limits.max_size, "sizes at or above this are parse errors (sanity bound)", minimum=0),
        ),
        (
            "max_ts_skew_s",
            float,
            setting(
                limits.max_ts_skew_ns / 1e9,
                "exchange times further than this from the receive time are flagged BAD_TS_EXCHANGE",
                minimum=1,
            ),
        ),
    ]
    comments = {**_field_comments(QualityConfig), **_QUALITY_DOCS}
    hints = typing.get_type_hints(QualityConfig)
    for f in dataclasses.fields(QualityConfig):
        tp = hints[f.name]
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        doc = comments.get(f.name, "quality threshold (quality.scoring.QualityConfig)")
        flags = ("--outdated-cutoff",) if f.name == "outdated_cutoff_s" else ()
        if tp in (int, float):
            fields_.append((f.name, tp, setting(default, doc, flags=flags, minimum=0)))
        elif typing.get_origin(tp) is dict:
            fields_.append((f.name, dict[str, float], setting(default, doc)))
    cls = dataclasses.make_dataclass("ThresholdsConfig", fields_, frozen=True)
    cls.__doc__ = 'Freshness and health limits (DESIGN.md, "Quality"): collectors and quality layer.'
    return cls


ThresholdsConfig: Any = _thresholds_class()


@dataclass(frozen=True)
class ServerConfig:
    """ticktape's HTTP server: /metrics, /api/quality and the dashboard."""

    host: str = setting("127.0.0.1", "bind address (0.0.0.0 inside containers)", flags=("--host",))
    port: int = setting(8321, "HTTP port (0 picks a free one)", flags=("--port",), minimum=0, maximum=65535)


@dataclass(frozen=True)
class CollectorConfig:
    """One ``[[collectors]]`` entry: one exchange's symbols and channels, in a group of collectors."""

    exchange: str
    symbols: tuple[str, ...]
    group: str
    channels: tuple[str, ...] = CHANNELS
    ws_url: str | None = None
    rest_url: str | None = None
    replica: str | None = None


#: Documentation of the ``[[collectors]]`` keys (they are per entry, so they have no env variable).
COLLECTOR_KEYS: dict[str, str] = {
    "exchange": "exchange id (required), one of the registered exchanges",
    "symbols": "symbols to capture (required), native (BTCUSDT) or normalised (BTC-USDT); 'all' or globs "
    "('BTC-*', '*-PERP') follow the venue's listings",
    "group": "collector group: one container/Deployment per group (default: the exchange id)",
    "channels": f"channels to capture (default: all of {', '.join(CHANNELS)})",
    "ws_url": "websocket endpoint override (simulators, testnets, proxies)",
    "rest_url": "REST endpoint override",
    "replica": "replica name (default none): entries of one exchange with different replicas capture "
    "the same symbols and the sink keeps one copy (README, 'Replicas')",
}


@dataclass(frozen=True)
class Config:
    """A resolved deployment configuration."""

    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    transport: TransportConfig = field(default_factory=TransportConfig)
    lake: LakeConfig = field(default_factory=LakeConfig)
    s3: S3Config = field(default_factory=S3Config)
    thresholds: Any = field(default_factory=ThresholdsConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    collectors: tuple[CollectorConfig, ...] = ()
    #: ``[<command>]`` sections: options only one command has, by argparse dest (validated against it)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: where each key's value came from: "default", "file", "env" or "cli"
    sources: dict[str, str] = field(default_factory=dict, repr=False)
    path: Path | None = None
    #: line of each key in the file, by location (for errors found after loading)
    lines: dict[str, int] = field(default_factory=dict, repr=False)

    def groups(self) -> dict[str, tuple[CollectorConfig, ...]]:
        """Collector groups in file order: group name -> its collectors."""
        out: dict[str, list[CollectorConfig]] = {}
        for c in self.collectors:
            out.setdefault(c.group, []).append(c)
        return {k: tuple(v) for k, v in out.items()}

    def selected_collectors(self) -> tuple[CollectorConfig, ...]:
        """The collectors this process runs: the ad-hoc one, else ``collect.group``'s, else all."""
        c = self.collect
        if c.exchange:
            return (
                CollectorConfig(
                    exchange=c.exchange,
                    symbols=c.symbols,
                    group=c.group or c.exchange,
                    channels=c.channels,
                    ws_url=c.ws_url,
                    rest_url=c.rest_url,
                    replica=c.replica,
                ),
            )
        if c.group:
            return self.groups().get(c.group, ())
        return self.collectors

    def quality_config(self) -> QualityConfig:
        """The quality layer's thresholds (``[thresholds]``) as :class:`quality.scoring.QualityConfig`."""
        names = [f.name for f in dataclasses.fields(QualityConfig)]
        return QualityConfig(**{name: getattr(self.thresholds, name) for name in names})

    def dialect_options(self) -> DialectOptions:
        """Options every exchange dialect gets: the sanity bounds of ``[thresholds]``."""
        th = self.thresholds
        return DialectOptions(limits=Limits(th.max_price, th.max_size, int(th.max_ts_skew_s * 1e9)))

    def transport_settings(self, transport: str) -> dict[str, Any]:
        """Options for :func:`streaming.open_publisher` / ``open_consumer`` that have no flag.

        Only values that the file or the environment set: otherwise the transport keeps its own
        defaults. Security settings go to aiokafka as they are (``extra``).
        """

        def given(key: str) -> bool:
            return self.sources.get(key) in ("file", "env")

        out: dict[str, Any] = {}
        if transport == "kafka":
            k = self.transport.kafka
            for key, option in (
                ("idempotence", "idempotence"),
                ("linger_ms", "linger_ms"),
                ("group_id", "group"),
            ):
                if given(f"transport.kafka.{key}"):
                    out[option] = getattr(k, key)
            if given("transport.kafka.compression"):
                out["compression"] = k.compression  # "none" reaches the producer as "no compression"
            extra: dict[str, Any] = {}
            if k.security_protocol != "PLAINTEXT":
                extra["security_protocol"] = k.security_protocol
            if k.security_protocol.endswith("SSL"):
                import ssl

                extra["ssl_context"] = ssl.create_default_context()
            if k.security_protocol.startswith("SASL_"):
                extra.update(
                    sasl_mechanism=k.sasl_mechanism,
                    sasl_plain_username=k.sasl_username,
                    sasl_plain_password=k.sasl_password,
                )
            if extra:
                out["extra"] = extra
        elif transport == "kinesis" and self.transport.kinesis.region:
            out["region"] = self.transport.kinesis.region
        return out

    def value(self, key: str) -> Any:
        """The value of a dotted key (``transport.kafka.bootstrap``)."""
        node: Any = self
        for part in key.split("."):
            node = getattr(node, part)
        return node


# --------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class ConfigIssue:
    """One problem, with where it is: a file (and line when known), an environment variable or a flag."""

    location: str
    message: str
    source: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.source
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.location}: {self.message}" if where else f"{self.location}: {self.message}"


class ConfigError(ValueError):
    """Every problem found in a configuration (not only the first)."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# --------------------------------------------------------------------------------------------------
# The settings table, derived from the dataclasses above


@dataclass(frozen=True)
class Setting:
    """One scalar setting: its key, type, default, documentation and where it can be set."""

    key: str
    type: Any
    default: Any
    doc: str
    flags: tuple[str, ...]
    choices: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None
    secret: bool

    @property
    def env(self) -> str:
        """The environment variable of this setting."""
        return env_name(self.key)


def env_name(key: str) -> str:
    """``transport.kafka.bootstrap`` -> ``TICKTAPE_TRANSPORT_KAFKA_BOOTSTRAP``."""
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def _walk(cls: type, prefix: str) -> list[Setting]:
    hints = typing.get_type_hints(cls)
    out: list[Setting] = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.extend(_walk(tp, key + "."))  # type: ignore[arg-type]
            continue
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        m = f.metadata
        out.append(
            Setting(
                key, tp, default, m["doc"], m["flags"], m["choices"], m["minimum"], m["maximum"], m["secret"]
            )
        )
    return out


_SECTION_CLASSES: dict[str, type] = {
    "deployment": DeploymentConfig,
    "collect": CollectConfig,
    "transport": TransportConfig,
    "lake": LakeConfig,
    "s3": S3Config,
    "thresholds": ThresholdsConfig,
    "server": ServerConfig,
}
SETTINGS: dict[str, Setting] = {
    s.key: s for name, cls in _SECTION_CLASSES.items() for s in _walk(cls, name + ".")
}
#: Sub-tables that exist in the file (``[transport.kafka]``), besides the top-level sections.
_TABLES = frozenset({".".join(k.split(".")[:i]) for k in SETTINGS for i in range(1, k.count(".") + 1)})


# --------------------------------------------------------------------------------------------------
# Conversions


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed) of a field type."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _type_name(tp: Any) -> str:
    base, _ = _base_type(tp)
    if typing.get_origin(base) is tuple:
        return "list of strings"
    if typing.get_origin(base) is dict:
        return "table of numbers"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(base, str(base))


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def convert(tp: Any, value: Any, *, from_text: bool) -> Any:
    """Converts a file value (``from_text=False``) or an env/flag text to ``tp``; ``ValueError`` otherwise."""
    base, optional = _base_type(tp)
    if value is None or (from_text and optional and value == ""):
        if optional:
            return None
        raise ValueError(f"expected a {_type_name(tp)}, got nothing")
    if typing.get_origin(base) is tuple:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            raise ValueError(f"expected a list of strings, got {value!r}")
        bad = [v for v in items if not isinstance(v, str)]
        if bad:
            raise ValueError(f"expected a list of strings, got {bad[0]!r} in it")
        return tuple(items)
    if typing.get_origin(base) is dict:
        return _convert_table(value, from_text=from_text)
    if base is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected a boolean (true/false), got {value!r}")
    if base is int or base is float:
        # TOML integers are valid numbers, but a number with a fraction is not an integer
        accepted: tuple[type, ...] = (int,) if base is int else (int, float)
        if type(value) in accepted:  # exact types: a TOML boolean is no number
            return base(value)
        if from_text and isinstance(value, str):
            try:
                return base(value.strip())
            except ValueError:
                pass
        raise ValueError(f"expected {'an integer' if base is int else 'a number'}, got {value!r}")
    if base is str:
        if isinstance(value, str):
            return value
        if from_text:
            return str(value)
        raise ValueError(f"expected a string, got {value!r}")
    raise ValueError(f"unsupported type {tp!r}")  # pragma: no cover - the table only has the types above


def _convert_table(value: Any, *, from_text: bool) -> dict[str, float]:
    """A table of positive numbers by name: ``{ okx = 8 }`` in the file, ``okx=8,kraken=10`` as text."""
    if from_text and isinstance(value, str):
        pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"expected NAME=SECONDS[,NAME=SECONDS...], got {value!r}")
        value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of numbers, got {value!r}")
    out: dict[str, float] = {}
    for name, number in value.items():
        try:
            out[name] = convert(float, number, from_text=from_text)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if out[name] <= 0:
            raise ValueError(f"{name}: expected a positive number, got {number!r}")
    return out


def _check_setting(s: Setting, value: Any) -> str | None:
    """The problem with a converted value (choices, range), or None."""
    if value is None:
        return None
    if s.choices is not None:
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if item not in s.choices:
                return f"{item!r} is not one of: {', '.join(map(str, s.choices))}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if s.minimum is not None and value < s.minimum:
            return f"{value} is below the minimum {s.minimum:g}"
        if s.maximum is not None and value > s.maximum:
            return f"{value} is above the maximum {s.maximum:g}"
    return None


# --------------------------------------------------------------------------------------------------
# Locating keys in the TOML text (tomllib does not keep positions)

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+(?:\s*\.\s*[A-Za-z0-9_\-\"']+)*)\s*=")


def locate_keys(text: str) -> dict[str, int]:
    """Line numbers (1-based) of tables and keys, by location (``collectors[1].exchange``)."""
    lines: dict[str, int] = {}
    prefix = ""
    arrays: dict[str, int] = {}
    open_brackets = 0  # > 0 inside a multi-line array value, whose lines hold no keys
    for number, line in enumerate(text.splitlines(), start=1):
        if open_brackets > 0:
            open_brackets += line.count("[") - line.count("]")
            continue
        header = _HEADER.match(line)
        if header:
            name = re.sub(r"[\"'\s]", "", header.group(2))
            if header.group(1) == "[[":
                arrays[name] = arrays.get(name, -1) + 1
                prefix = f"{name}[{arrays[name]}]"
            else:
                prefix = name
            lines.setdefault(prefix, number)
            continue
        key = _KEY.match(line)
        if key:
            name = re.sub(r"[\"'\s]", "", key.group(1))
            lines.setdefault(f"{prefix}.{name}" if prefix else name, number)
            value = line[key.end() :].split("#", 1)[0]
            open_brackets = max(value.count("[") - value.count("]"), 0)
    return lines


# --------------------------------------------------------------------------------------------------
# Loading


class _Collector:
    """Collects issues and values while a configuration is loaded."""

    def __init__(self, source: str, lines: dict[str, int]) -> None:
        self.source = source
        self.lines = lines
        self.issues: list[ConfigIssue] = []

    def add(self, location: str, message: str, source: str | None = None) -> None:
        line = None
        if source is None:
            source = self.source
            probe = location
            # fall back to the enclosing table's line when the key itself is not on a line of its own
            while probe and line is None:
                line = self.lines.get(probe)
                if line is None:
                    probe = probe.rsplit(".", 1)[0] if "." in probe else ""
        self.issues.append(ConfigIssue(location, message, source, line))


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _flatten_file(
    data: Mapping[str, Any], out: _Collector, command_names: tuple[str, ...]
) -> tuple[dict[str, Any], list[Any], dict[str, dict[str, Any]]]:
    """Splits a parsed TOML document into scalar settings, collector entries and command sections."""
    values: dict[str, Any] = {}
    commands: dict[str, dict[str, Any]] = {}
    collectors: list[Any] = []
    top_known = [*_SECTION_CLASSES, "collectors", *command_names]

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        for name, value in table.items():
            key = f"{prefix}{name}"
            if key in SETTINGS:
                if SETTINGS[key].secret:
                    out.add(key, f"secrets are read from the environment only: set {env_name(key)}")
                else:
                    values[key] = value
            elif key in _TABLES:
                if isinstance(value, dict):
                    walk(value, key + ".")
                else:
                    out.add(key, f"expected a table [{key}], got {value!r}")
            elif _SECRET_NAME.search(name):
                out.add(
                    key,
                    "secrets are read from the environment only (AWS credentials: the standard AWS chain)",
                )
            elif prefix.rstrip(".") in command_names:
                # [collect] is a section and a command: its other options are collect's own flags
                commands.setdefault(prefix.rstrip("."), {})[name] = value
            else:
                siblings = [k.rsplit(".", 1)[-1] for k in (*SETTINGS, *_TABLES) if k.startswith(prefix)]
                out.add(key, f"unknown key{_suggest(name, sorted(set(siblings)))}")

    for name, value in data.items():
        if name == "collectors":
            if isinstance(value, list):
                collectors = value
            else:
                out.add("collectors", "expected an array of tables ([[collectors]])")
        elif name in _SECTION_CLASSES:
            if isinstance(value, dict):
                walk(value, name + ".")
            else:
                out.add(name, f"expected a table [{name}], got {value!r}")
        elif name in command_names:
            if isinstance(value, dict):
                commands[name] = dict(value)
            else:
                out.add(name, f"expected a table [{name}] of options of `ticktape {name}`")
        else:
            out.add(name, f"unknown section{_suggest(name, top_known)}")
    return values, collectors, commands


def _parse_collectors(entries: list[Any], out: _Collector) -> list[CollectorConfig]:
    known = exchange_ids()
    result: list[CollectorConfig] = []
    seen: dict[tuple[str, str, str], int] = {}
    for i, entry in enumerate(entries):
        loc = f"collectors[{i}]"
        if not isinstance(entry, dict):
            out.add(loc, "expected a table")
            continue
        ok = True
        for name in entry:
            if name not in COLLECTOR_KEYS:
                why = (
                    "secrets are read from the environment only"
                    if _SECRET_NAME.search(name)
                    else f"unknown key{_suggest(name, list(COLLECTOR_KEYS))}"
                )
                out.add(f"{loc}.{name}", why)
                ok = False
        exchange = entry.get("exchange")
        if exchange is None:
            out.add(f"{loc}.exchange", "missing (required)")
            ok = False
        elif not isinstance(exchange, str) or exchange not in known:
            out.add(f"{loc}.exchange", f"unknown exchange {exchange!r} (known: {', '.join(known)})")
            ok = False
        symbols: tuple[str, ...] = ()
        if "symbols" not in entry:
            out.add(f"{loc}.symbols", "missing (required)")
            ok = False
        else:
            try:
                symbols = convert(tuple[str, ...], entry["symbols"], from_text=False)
            except ValueError as exc:
                out.add(f"{loc}.symbols", str(exc))
                ok = False
            if not symbols and ok:
                out.add(f"{loc}.symbols", "empty: list at least one symbol")
                ok = False
            dup_in_list: set[str] = set()
            for symbol in symbols:
                if is_pattern(symbol) and _PATTERN.match(symbol) and ".." not in symbol:
                    continue  # 'all' or a glob: resolved against the venue's instruments at start
                if not _SYMBOL.match(symbol) or ".." in symbol:
                    out.add(f"{loc}.symbols", f"invalid symbol {symbol!r}")
                    ok = False
                    continue
                norm = symbol.upper().replace("-", "").replace("/", "").replace("_", "")
                if norm in dup_in_list:
                    out.add(f"{loc}.symbols", f"{symbol!r} is listed twice")
                    ok = False
                dup_in_list.add(norm)
                if isinstance(exchange, str):
                    other = seen.setdefault((exchange, str(entry.get("replica")), norm), i)
                    if other != i:
                        out.add(
                            f"{loc}.symbols",
                            f"{symbol!r} on {exchange} is already collected by collectors[{other}]",
                        )
                        ok = False
        group = entry.get("group", exchange if isinstance(exchange, str) else "")
        if not isinstance(group, str) or not _GROUP_NAME.match(group):
            out.add(
                f"{loc}.group",
                f"invalid group name {group!r}: lower-case letters, digits and '-', at most 42 characters",
            )
            ok = False
        channels: tuple[str, ...] = CHANNELS
        if "channels" in entry:
            try:
                channels = convert(tuple[str, ...], entry["channels"], from_text=False)
                bad = [c for c in channels if c not in CHANNELS]
                if bad:
                    out.add(f"{loc}.channels", f"unknown channel {bad[0]!r} (known: {', '.join(CHANNELS)})")
                    ok = False
                elif not channels:
                    out.add(f"{loc}.channels", "empty: list at least one channel")
                    ok = False
            except ValueError as exc:
                out.add(f"{loc}.channels", str(exc))
                ok = False
        urls: dict[str, str | None] = {}
        for name, schemes in (("ws_url", ("ws://", "wss://")), ("rest_url", ("http://", "https://"))):
            url = entry.get(name)
            urls[name] = None
            if url is None:
                continue
            if not isinstance(url, str) or not url.startswith(schemes):
                out.add(f"{loc}.{name}", f"expected a URL starting with {' or '.join(schemes)}, got {url!r}")
                ok = False
            else:
                urls[name] = url
        replica = entry.get("replica")
        if replica is not None:
            try:
                check_replica_name(replica)
            except ValueError as exc:
                out.add(f"{loc}.replica", str(exc))
                ok = False
        if ok:
            result.append(
                CollectorConfig(
                    exchange=str(exchange),
                    symbols=symbols,
                    group=str(group),
                    channels=channels,
                    ws_url=urls["ws_url"],
                    rest_url=urls["rest_url"],
                    replica=replica,
                )
            )
    return result


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            kwargs[f.name] = _build(hints[f.name], values, key + ".")
        elif key in values:
            kwargs[f.name] = values[key]
    return cls(**kwargs)


def _cross_checks(cfg: Config, out: _Collector, sources: Mapping[str, str], check_secrets: bool) -> None:
    """Rules that involve several settings."""

    def add(key: str, message: str) -> None:
        src = sources.get(key, "default")
        # a rule broken by a built-in default is reported where the file set its counterpart
        out.add(key, message, None if src in ("file", "default") else _source_label(key, src))

    t = cfg.transport
    if t.kind == "kafka":
        servers = [s.strip() for s in (t.kafka.bootstrap or "").split(",") if s.strip()]
        if not servers:
            add("transport.kafka.bootstrap", "required when transport.kind is 'kafka'")
        for server in servers:
            if not _HOST_PORT.match(server) or not 0 < int(server.rsplit(":", 1)[1]) < 65536:
                add("transport.kafka.bootstrap", f"expected HOST:PORT, got {server!r}")
        if t.kafka.security_protocol.startswith("SASL_") and check_secrets:
            if not t.kafka.sasl_username:
                add("transport.kafka.sasl_username", f"required by {t.kafka.security_protocol}")
            if not t.kafka.sasl_password:
                add(
                    "transport.kafka.sasl_password",
                    f"required by {t.kafka.security_protocol}: set {env_name('transport.kafka.sasl_password')}",
                )
    if t.kind == "kinesis" and not t.kinesis.stream:
        add("transport.kinesis.stream", "required when transport.kind is 'kinesis'")
    for key in ("transport.kinesis.endpoint_url", "s3.endpoint_url"):
        url = cfg.value(key)
        if url and not str(url).startswith(("http://", "https://")):
            add(key, f"expected an http:// or https:// URL, got {url!r}")
    if cfg.s3.url is not None and not _S3_URL.match(cfg.s3.url):
        add("s3.url", f"expected s3://BUCKET[/PREFIX] with a valid bucket name, got {cfg.s3.url!r}")
    th = cfg.thresholds
    if th.exclude_score >= th.ok_score or th.ok_score > 100:
        add(
            "thresholds.exclude_score",
            f"must be below thresholds.ok_score ({th.ok_score:g}), which is at most 100",
        )
    unknown_raw = sorted(set(cfg.lake.raw_retention) - set(exchange_ids()))
    if unknown_raw:
        add("lake.raw_retention", f"unknown exchange {unknown_raw[0]!r} (known: {', '.join(exchange_ids())})")
    if any(days < 0 or days != int(days) for days in cfg.lake.raw_retention.values()):
        add("lake.raw_retention", "days must be whole numbers >= 0 (0 keeps raw forever)")
    unknown = sorted(set(th.event_age_limits) - set(exchange_ids()))
    if unknown:
        add(
            "thresholds.event_age_limits",
            f"unknown exchange {unknown[0]!r} (known: {', '.join(exchange_ids())})",
        )
    if 0 < th.recycle_after_s < th.stale_book_s:
        add("thresholds.recycle_after_s", "must be 0 (never) or at least thresholds.stale_book_s")
    if not cfg.lake.path:
        add("lake.path", "must not be empty")
    c = cfg.collect
    if c.exchange is not None and c.exchange not in exchange_ids():
        add("collect.exchange", f"unknown exchange {c.exchange!r} (known: {', '.join(exchange_ids())})")
    if c.exchange is not None and not c.symbols:
        add("collect.symbols", "required with collect.exchange")
    if c.exchange is None and c.group is not None and c.group not in cfg.groups():
        groups = ", ".join(cfg.groups()) or "none defined: add [[collectors]] entries"
        add("collect.group", f"no collector group {c.group!r} (groups: {groups})")


def _source_label(key: str, source: str) -> str:
    if source == "env":
        return f"env {env_name(key)}"
    if source == "cli":
        flags = SETTINGS[key].flags if key in SETTINGS else ()
        return f"flag {flags[0]}" if flags else "command line"
    return source


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    check_secrets: bool | None = None,
    command_names: tuple[str, ...] | None = None,
) -> Config:
    """Loads a configuration: defaults < file ``path`` < ``env`` (TICKTAPE_*) < ``overrides`` (dotted keys).

    ``env`` defaults to nothing (pass ``os.environ`` for a real run); ``overrides`` are command-line
    values by dotted key (typed values, or text as in the environment). Secret requirements are
    checked when ``env`` is given (``check_secrets`` overrides that). Raises :class:`ConfigError`
    listing every problem with its location.
    """
    if command_names is None:
        from ticktape.cli import COMMAND_MODULES

        command_names = COMMAND_MODULES
    file_values: dict[str, Any] = {}
    entries: list[Any] = []
    commands: dict[str, dict[str, Any]] = {}
    source = str(path) if path is not None else ""
    out = _Collector(source, {})
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigIssue("file", f"cannot read: {exc.strerror or exc}", source)]) from None
        out.lines = locate_keys(text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"line (\d+)", str(exc))
            raise ConfigError(
                [ConfigIssue("syntax", f"invalid TOML: {exc}", source, int(m.group(1)) if m else None)]
            ) from None
        file_values, entries, commands = _flatten_file(data, out, command_names)

    values: dict[str, Any] = {}
    sources: dict[str, str] = dict.fromkeys(SETTINGS, "default")
    for key, raw in file_values.items():
        s = SETTINGS[key]
        try:
            value = convert(s.type, raw, from_text=False)
        except ValueError as exc:
            out.add(key, str(exc))
            continue
        problem = _check_setting(s, value)
        if problem:
            out.add(key, problem)
            continue
        values[key] = value
        sources[key] = "file"
    for layer, items in (("env", _env_layer(env or {})), ("cli", dict(overrides or {}))):
        for key, raw in items.items():
            label = _source_label(key, layer)
            if key not in SETTINGS:
                out.add(key, "unknown key", label)
                continue
            s = SETTINGS[key]
            try:
                value = convert(s.type, raw, from_text=isinstance(raw, str))
            except ValueError as exc:
                out.add(key, str(exc), label)
                continue
            problem = _check_setting(s, value)
            if problem:
                out.add(key, problem, label)
                continue
            values[key] = value
            sources[key] = layer
    collectors = _parse_collectors(entries, out)
    sections = {name: _build(cls, values, name + ".") for name, cls in _SECTION_CLASSES.items()}
    cfg = Config(
        **sections,
        collectors=tuple(collectors),
        commands=commands,
        sources=sources,
        path=Path(path) if path is not None else None,
        lines=out.lines,
    )
    _cross_checks(cfg, out, sources, env is not None if check_secrets is None else check_secrets)
    if out.issues:
        # file order first (what an editor shows), then environment and flags
        raise ConfigError(sorted(out.issues, key=lambda i: (i.line is None, i.line or 0)))
    return cfg


def _env_layer(env: Mapping[str, str]) -> dict[str, str]:
    by_env = {s.env: key for key, s in SETTINGS.items()}
    return {by_env[name]: value for name, value in env.items() if name in by_env}


def unknown_env(env: Mapping[str, str], extra: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``TICKTAPE_*`` variables that no setting reads (typos), besides ``extra`` known ones."""
    known = {s.env for s in SETTINGS.values()} | {CONFIG_ENV} | set(extra)
    return sorted(name for name in env if name.startswith(ENV_PREFIX) and name not in known)


# --------------------------------------------------------------------------------------------------
# Commands: --config FILE and every flag mapped to a key


class _Unset:
    """Marks a flag that was not given on the command line (so file and environment may set it)."""

    def __repr__(self) -> str:
        return "<config>"


UNSET: Any = _Unset()

#: argparse dest -> shared key, for flags whose meaning is the same in every command.
SHARED_DESTS: dict[str, str] = {
    "lake": "lake.path",
    "transport": "transport.kind",
    "log": "transport.local.log_dir",
    "log_dir": "transport.local.log_dir",
    "fsync": "transport.local.fsync",
    "kafka_bootstrap": "transport.kafka.bootstrap",
    "topic_prefix": "transport.kafka.topic_prefix",
    "group_id": "transport.kafka.group_id",
    "idempotence": "transport.kafka.idempotence",
    "linger_ms": "transport.kafka.linger_ms",
    "compression": "transport.kafka.compression",
    "kinesis_stream": "transport.kinesis.stream",
    "queue_policy": "transport.queue_policy",
    "outdated_cutoff": "thresholds.outdated_cutoff_s",
    "stale_book_s": "thresholds.stale_book_s",
    "stale_trades_s": "thresholds.stale_trades_s",
    "recycle_after_s": "thresholds.recycle_after_s",
    "host": "server.host",
    "port": "server.port",
    "to": "s3.url",
    "raw_retention_days": "lake.raw_retention_days",
}
#: Collector flags (``collect``, ``replay``): the ad-hoc collector of :class:`CollectConfig`.
COLLECT_DESTS: dict[str, str] = {
    "group": "collect.group",
    "exchange": "collect.exchange",
    "symbols": "collect.symbols",
    "channels": "collect.channels",
    "ws_url": "collect.ws_url",
    "rest_url": "collect.rest_url",
    "max_connection_age": "collect.max_connection_age_s",
    "instruments_refresh_s": "collect.instruments_refresh_s",
    "raw": "collect.raw",
    "raw_batch_bytes": "collect.raw_batch_bytes",
    "raw_batch_s": "collect.raw_batch_s",
}
_SKIP_DESTS = frozenset({"help", "config", "func", "version"})


#: Commands whose ``--host``/``--port`` are ticktape's HTTP server (``server.*``).
SERVER_COMMANDS = frozenset({"collect", "serve", "demo"})


def key_for(command: str, dest: str, dests: frozenset[str] | set[str] = frozenset()) -> str:
    """The configuration key of a command's flag (by argparse dest; ``dests``: all of its flags)."""
    if dest == "endpoint_url":
        # next to the transport flags it is Kinesis' endpoint; on the lake readers it is S3's
        return "transport.kinesis.endpoint_url" if "kinesis_stream" in dests else "s3.endpoint_url"
    if dest in ("host", "port") and command not in SERVER_COMMANDS:
        return f"{command}.{dest}"  # e.g. the simulator's own port is not ticktape's HTTP server
    if command == "sync" and dest == "dest":  # sync's --to
        return "s3.url"
    if command == "collect" and dest in COLLECT_DESTS:
        return COLLECT_DESTS[dest]
    if dest in SHARED_DESTS:
        return SHARED_DESTS[dest]
    return f"{command}.{dest}"


@dataclass
class _FlagInfo:
    key: str
    action: argparse.Action
    default: Any
    required: bool


def _configurable(action: argparse.Action) -> bool:
    return (
        bool(action.option_strings) and action.dest not in _SKIP_DESTS and action.default != argparse.SUPPRESS
    )


def enable_config(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds ``--config FILE`` to a command and lets the file and ``TICKTAPE_*`` set each of its flags.

    Call it at the end of the command's ``register`` (after ``set_defaults(func=...)``). The command's
    function then receives ``args`` with every flag resolved (defaults < file < env < flags) and the
    loaded :class:`Config` as ``args.config_obj``. Configuration errors are printed, with their
    locations, and the command exits 2 without running.
    """
    func = parser.get_default("func")
    if func is None:
        raise ValueError(f"enable_config({command!r}): call it after set_defaults(func=...)")
    if command == "collect" and not any(a.dest == "group" for a in parser._actions):
        parser.add_argument(
            "--group", help="collector group of the configuration file to run (env TICKTAPE_COLLECT_GROUP)"
        )
    infos: list[_FlagInfo] = []
    dests = {a.dest for a in parser._actions}
    for action in parser._actions:
        if not _configurable(action):
            continue
        infos.append(_FlagInfo(key_for(command, action.dest, dests), action, action.default, action.required))
        if action.help and "%(default)" in action.help:
            action.help = action.help.replace("%(default)s", str(action.default))
        if action.required:
            action.required = False
            action.help = f"{action.help or ''} (required unless set by --config or the environment)".strip()
        # append/count actions build on their default, so None (not UNSET) marks "not given" there
        action.default = None if isinstance(action, argparse._AppendAction | argparse._CountAction) else UNSET
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"deployment configuration file (TOML; env {CONFIG_ENV}); flags override it",
    )

    def run(args: argparse.Namespace) -> int:
        try:
            args.config_obj = resolve_args(args, command, infos, os.environ)
            _apply_log_level(args, args.config_obj)
        except ConfigError as exc:
            import sys

            print(f"ticktape {command}: configuration error(s):", file=sys.stderr)
            for issue in exc.issues:
                print(f"  {issue}", file=sys.stderr)
            return 2
        result: int = func(args)
        return result

    def resolve(args: argparse.Namespace, env: Mapping[str, str]) -> Config:
        return resolve_args(args, command, infos, env)

    # ``config_resolver`` lets a caller (deployment tests, supervisors) resolve without running
    parser.set_defaults(func=run, config_resolver=resolve)


def _apply_log_level(args: argparse.Namespace, cfg: Config) -> None:
    """Applies ``deployment.log_level`` unless ``--log-level`` (a flag of ``ticktape`` itself) changed it."""
    if (
        cfg.sources.get("deployment.log_level") in ("file", "env")
        and str(getattr(args, "log_level", "INFO")) == "INFO"
    ):
        import logging

        logging.getLogger().setLevel(cfg.deployment.log_level)


def _given(info: _FlagInfo, value: Any) -> bool:
    if isinstance(info.action, argparse._AppendAction | argparse._CountAction):
        return value is not None
    return value is not UNSET


def _to_arg(action: argparse.Action, value: Any) -> Any:
    """A configuration value in the shape the command's argparse would have produced."""
    if value is None:
        return None
    if action.nargs == 0:  # store_true / store_false / BooleanOptionalAction
        return bool(value)
    many = (
        action.nargs in ("+", "*")
        or isinstance(action.nargs, int)
        or isinstance(action, argparse._AppendAction)
    )
    typ: Callable[[str], Any] | None = action.type if callable(action.type) else None
    if many:
        items = list(value) if isinstance(value, list | tuple) else [v for v in str(value).split(",") if v]
        return [typ(str(v)) if typ else v for v in items]
    if isinstance(value, list | tuple):
        value = ",".join(map(str, value))
    if typ is not None:
        return typ(value if isinstance(value, str) else str(value))
    return value if isinstance(value, str) else str(value)


def resolve_args(
    args: argparse.Namespace, command: str, infos: list[_FlagInfo], env: Mapping[str, str]
) -> Config:
    """Fills every configurable flag of ``args`` from file and environment; returns the Config."""
    path = getattr(args, "config", None) or env.get(CONFIG_ENV) or None
    overrides: dict[str, Any] = {}
    for info in infos:
        value = getattr(args, info.action.dest, None)
        if info.key in SETTINGS and _given(info, value):
            overrides[info.key] = list(value) if isinstance(value, list | tuple) else value
            if not isinstance(value, list | tuple | bool | int | float | str) and value is not None:
                overrides[info.key] = str(value)
    cfg = load_config(path, env, overrides)
    section = cfg.commands.get(command, {})
    issues: list[ConfigIssue] = command_section_issues(cfg, command, [info.action for info in infos])
    for info in infos:
        dest = info.action.dest
        value = getattr(args, dest, None)
        if _given(info, value):
            continue
        env_var = env_name(info.key)
        origin = "default"
        if info.key in SETTINGS and cfg.sources.get(info.key) in ("file", "env"):
            origin = cfg.sources[info.key]
        elif info.key not in SETTINGS and env_var in env:
            origin = "env"
        elif info.key not in SETTINGS and dest in section:
            origin = "section"  # checked by command_section_issues
        where = f"env {env_var}" if origin == "env" else str(path or "")
        try:
            if origin == "default":
                # unset in file and environment: the command keeps its own default, so adding
                # --config support never changes what a command does without configuration
                value = info.default
            elif info.key in SETTINGS:
                value = _to_arg(info.action, cfg.value(info.key))
            else:
                value = _to_arg(info.action, env[env_var] if origin == "env" else section[dest])
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            if origin != "section":
                issues.append(ConfigIssue(info.key, f"invalid value: {exc}", where))
            continue
        problem = _choice_problem(info.action, value)
        if problem and origin in ("file", "env"):
            issues.append(ConfigIssue(info.key, problem, where, cfg.lines.get(info.key)))
        if value is None and info.required:
            issues.append(
                ConfigIssue(
                    info.key,
                    f"required: give {info.action.option_strings[0]}, set {env_name(info.key)}, or set it in --config",
                )
            )
        setattr(args, dest, value)
    if command == "serve" and not getattr(args, "exchanges", None) and cfg.collectors:
        # the fleet's exchanges are expected to report: one that never does shows as silent
        args.exchanges = ",".join(dict.fromkeys(c.exchange for c in cfg.collectors))
    if command == "collect" and not getattr(args, "exchange", None) and cfg.collectors:
        _fill_collector(args, cfg)
        issues = [i for i in issues if i.location not in ("collect.exchange", "collect.symbols")]
    if issues:
        raise ConfigError(issues)
    return cfg


def command_section_issues(cfg: Config, command: str, actions: list[argparse.Action]) -> list[ConfigIssue]:
    """Problems of the ``[<command>]`` table: options the command lacks, values its flags refuse."""
    by_dest = {a.dest: a for a in actions if _configurable(a)}
    source = str(cfg.path or "")
    issues: list[ConfigIssue] = []
    for name, value in cfg.commands.get(command, {}).items():
        where = f"{command}.{name}"
        line = cfg.lines.get(where, cfg.lines.get(command))
        action = by_dest.get(name)
        if action is None or key_for(command, name, set(by_dest)) in SETTINGS:
            hint = (
                f" (set {key_for(command, name, set(by_dest))} instead)"
                if action is not None
                else _suggest(name, sorted(by_dest))
            )
            issues.append(ConfigIssue(where, f"not an option of `ticktape {command}`{hint}", source, line))
            continue
        try:
            converted = _to_arg(action, value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            issues.append(ConfigIssue(where, f"invalid value: {exc}", source, line))
            continue
        problem = (
            f"expected a boolean (true/false), got {value!r}"
            if action.nargs == 0 and not isinstance(value, bool)
            else _choice_problem(action, converted)
        )
        if problem:
            issues.append(ConfigIssue(where, problem, source, line))
    return issues


def _choice_problem(action: argparse.Action, value: Any) -> str | None:
    """Why a flag's ``choices`` refuse a value, or None."""
    if action.choices is None or value is None or action.nargs == 0:
        return None
    bad = [v for v in (value if isinstance(value, list) else [value]) if v not in action.choices]
    return f"{bad[0]!r} is not one of: {', '.join(map(str, action.choices))}" if bad else None


def _fill_collector(args: argparse.Namespace, cfg: Config) -> None:
    """Sets ``collect``'s exchange flags from the configured collector group.

    A group may hold several exchanges: ``args.group_collectors`` lists them all and ``collect`` runs
    each in the same process; the single-exchange flags are set from the first one.
    """
    selected = cfg.selected_collectors()
    if not selected:
        groups = ", ".join(f"{g} ({len(cs)} collector(s))" for g, cs in cfg.groups().items())
        raise ConfigError(
            [
                ConfigIssue(
                    "collect.group",
                    f"no collector group selected or it is empty (--group or {env_name('collect.group')}); "
                    f"groups: {groups or 'none configured'}",
                )
            ]
        )
    args.group_collectors = selected
    chosen = selected[0]
    args.exchange = chosen.exchange
    args.symbols = ",".join(chosen.symbols)
    if not getattr(args, "channels", None):
        args.channels = ",".join(chosen.channels)
    for name in ("ws_url", "rest_url"):
        if getattr(args, name, None) is None:
            setattr(args, name, getattr(chosen, name))


def quality_config_of(args: argparse.Namespace) -> QualityConfig:
    """The quality thresholds a command resolved (``[thresholds]``), or the defaults without ``--config``."""
    cfg: Config | None = getattr(args, "config_obj", None)
    return cfg.quality_config() if cfg is not None else QualityConfig()


def dialect_options_of(args: argparse.Namespace) -> DialectOptions:
    """The dialect options a command resolved: the OUTDATED cutoff of every normaliser (``[thresholds]
    outdated_cutoff_s`` or ``--outdated-cutoff``), so live capture and replay flag as configured, and the
    sanity bounds of ``[thresholds]``."""
    cutoff_s = getattr(args, "outdated_cutoff", None)
    if cutoff_s is None:
        cutoff_s = quality_config_of(args).outdated_cutoff_s
    cfg: Config | None = getattr(args, "config_obj", None)
    options = cfg.dialect_options() if cfg is not None else DialectOptions()
    return dataclasses.replace(options, outdated_cutoff_ns=round(cutoff_s * 1_000_000_000))


def reference_rows() -> list[tuple[str, str, str, str, str]]:
    """(key, env variable, flags, default, description) of every setting, for documentation."""
    rows = []
    for key, s in SETTINGS.items():
        default = "" if s.secret else _show(s.default)
        doc = s.doc + (f" ({' | '.join(map(str, s.choices))})" if s.choices else "")
        rows.append((key, s.env, ", ".join(s.flags), default, doc))
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)
