"""The deployment configuration: example validates, errors are located, precedence holds, flags map."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from collectors.registry import exchange_ids
from quality.scoring import QualityConfig
from ticktape.config import (
    SETTINGS,
    UNSET,
    ConfigError,
    enable_config,
    env_name,
    load_config,
    locate_keys,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ticktape.toml"


def run_config_cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Runs ``ticktape config ...`` through the real entry point in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", "ticktape.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def write(tmp_path: Path, text: str, name: str = "t.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_example_configuration_validates() -> None:
    cfg = load_config(EXAMPLE, check_secrets=False)
    assert cfg.transport.kind == "kafka"
    assert cfg.collectors, "the example must define collector groups"
    assert all(c.exchange in exchange_ids() for c in cfg.collectors)
    code, out, err = run_config_cli("config", "validate", str(EXAMPLE))
    assert code == 0, err
    assert ": ok:" in out


def test_defaults_only() -> None:
    cfg = load_config(None)
    assert cfg.server.host == "127.0.0.1"  # servers bind loopback unless told otherwise
    assert cfg.transport.kind == "local"
    assert cfg.collectors == ()
    assert set(cfg.sources.values()) == {"default"}


BAD = """\
[deployment]
# the process
log_level = "LOUD"

[transport]
kind = "carrier-pigeon"
queue_polcy = "block"

[transport.kafka]
bootstrap = "kafka:9092"
sasl_password = "hunter2"

[server]
port = 70000

[s3]
url = "http://bucket/prefix"
aws_secret_access_key = "abc"

[thresholds]
ok_score = 60

[colect]
group = "a"

[[collectors]]
exchange = "binance"
symbols = ["BTCUSDT", "ETHUSDT"]

[[collectors]]
exchange = "foo"
symbols = ["BTCUSDT"]

[[collectors]]
exchange = "binance"
group = "Bad Group"
symbols = [
    "ETHUSDT",
    "../etc",
]
channels = ["trades", "candles"]
ws_url = "http://not-a-websocket"
book_depth = 0
"""


def test_every_error_is_reported_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = [str(i) for i in info.value.issues]
    known = ", ".join(exchange_ids())
    expected = [
        f"{path}:3: deployment.log_level: 'LOUD' is not one of: DEBUG, INFO, WARNING, ERROR, CRITICAL",
        f"{path}:6: transport.kind: 'carrier-pigeon' is not one of: local, kafka, kinesis",
        f"{path}:7: transport.queue_polcy: unknown key (did you mean 'queue_policy'?)",
        f"{path}:11: transport.kafka.sasl_password: secrets are read from the environment only: "
        "set TICKTAPE_TRANSPORT_KAFKA_SASL_PASSWORD",
        f"{path}:14: server.port: 70000 is above the maximum 65535",
        f"{path}:18: s3.aws_secret_access_key: secrets are read from the environment only",
        f"{path}:23: colect: unknown section (did you mean 'collect'?)",
        f"{path}:31: collectors[1].exchange: unknown exchange 'foo' (known: {known})",
        f"{path}:36: collectors[2].group: invalid group name 'Bad Group'",
        f"{path}:37: collectors[2].symbols: 'ETHUSDT' on binance is already collected by collectors[0]",
        f"{path}:37: collectors[2].symbols: invalid symbol '../etc'",
        f"{path}:41: collectors[2].channels: unknown channel 'candles' (known: trades, book, bbo)",
        f"{path}:42: collectors[2].ws_url: expected a URL starting with ws:// or wss://",
        f"{path}:43: collectors[2].book_depth: unknown key",
        f"{path}:17: s3.url: expected s3://BUCKET[/PREFIX]",
        f"{path}:20: thresholds.exclude_score: must be below thresholds.ok_score (60)",
    ]
    for line in expected:
        assert any(t.startswith(line) for t in text), f"missing {line!r} in:\n" + "\n".join(text)
    assert len(text) == len(expected), "\n".join(text)
    # the CLI prints the same, one per line, and fails
    code, _, err = run_config_cli("config", "validate", str(path))
    assert code == 1
    assert f"{path}:31: collectors[1].exchange: unknown exchange 'foo'" in err
    assert "16 error(s)" in err
    code, out, _ = run_config_cli("config", "validate", "--json", str(path))
    assert code == 1
    assert len(json.loads(out)["errors"]) == 16


def test_type_errors_and_syntax_errors(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = "http"\n[transport.kafka]\nidempotence = "yes"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(i) for i in info.value.issues] == [
        f"{path}:2: server.port: expected an integer, got 'http'",
        f"{path}:4: transport.kafka.idempotence: 'yes' is not one of: auto, on, off",
    ]
    broken = write(tmp_path, '[lake]\npath = "/x"\n\n[server\nport = 1\n', "broken.toml")
    with pytest.raises(ConfigError) as info:
        load_config(broken)
    (issue,) = info.value.issues
    assert issue.line == 4 and issue.location == "syntax" and "invalid TOML" in issue.message
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_missing_required_collector_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[[collectors]]\ngroup = 'a'\n\n[[collectors]]\nexchange = 'binance'\nsymbols = []\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(i) for i in info.value.issues] == [
        f"{path}:1: collectors[0].exchange: missing (required)",
        f"{path}:1: collectors[0].symbols: missing (required)",
        f"{path}:6: collectors[1].symbols: empty: list at least one symbol",
    ]


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[lake]\npath = "/file/lake"\n[server]\nport = 9000\nhost = "0.0.0.0"\n'
        '[transport]\nkind = "kafka"\n[transport.kafka]\nbootstrap = "file:9092"\n',
    )
    env = {
        "TICKTAPE_SERVER_PORT": "9100",
        "TICKTAPE_TRANSPORT_KAFKA_BOOTSTRAP": "env-a:9092,env-b:9092",
        "TICKTAPE_THRESHOLDS_OUTDATED_CUTOFF_S": "1.5",
        "UNRELATED": "x",
    }
    cfg = load_config(path, env, {"transport.kafka.bootstrap": "cli:9092"})
    assert cfg.lake.path == "/file/lake" and cfg.sources["lake.path"] == "file"
    assert cfg.server.port == 9100 and cfg.sources["server.port"] == "env"
    assert cfg.server.host == "0.0.0.0"
    assert cfg.transport.kafka.bootstrap == "cli:9092" and cfg.sources["transport.kafka.bootstrap"] == "cli"
    assert cfg.thresholds.outdated_cutoff_s == 1.5
    assert cfg.transport.kafka.linger_ms == 0 and cfg.sources["transport.kafka.linger_ms"] == "default"


def test_environment_errors_name_the_variable() -> None:
    env = {
        "TICKTAPE_SERVER_PORT": "eighty",
        "TICKTAPE_TRANSPORT_KIND": "kafka",
        "TICKTAPE_TRANSPORT_KAFKA_BOOTSTRAP": "no-port",
    }
    with pytest.raises(ConfigError) as info:
        load_config(None, env)
    assert [str(i) for i in info.value.issues] == [
        "env TICKTAPE_SERVER_PORT: server.port: expected an integer, got 'eighty'",
        "env TICKTAPE_TRANSPORT_KAFKA_BOOTSTRAP: transport.kafka.bootstrap: expected HOST:PORT, got 'no-port'",
    ]


def test_transport_requirements() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TICKTAPE_TRANSPORT_KIND": "kafka"})
    assert [str(i) for i in info.value.issues] == [
        "transport.kafka.bootstrap: required when transport.kind is 'kafka'"
    ]
    with pytest.raises(
        ConfigError, match=r"transport\.kinesis\.stream: required when transport\.kind is 'kinesis'"
    ):
        load_config(None, {}, {"transport.kind": "kinesis"})
    cfg = load_config(None, {}, {"transport.kind": "kinesis", "transport.kinesis.stream": "s"})
    assert cfg.transport.kinesis.stream == "s"


def test_secrets_only_from_environment_and_never_printed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[transport]\nkind = "kafka"\n[transport.kafka]\nbootstrap = "k:9093"\nsecurity_protocol = "SASL_SSL"\nsasl_username = "svc"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert [str(i) for i in info.value.issues] == [
        f"{path}:3: transport.kafka.sasl_password: required by SASL_SSL: set TICKTAPE_TRANSPORT_KAFKA_SASL_PASSWORD"
    ]
    cfg = load_config(path, {"TICKTAPE_TRANSPORT_KAFKA_SASL_PASSWORD": "s3cret"})
    assert cfg.transport.kafka.sasl_password == "s3cret"
    assert "s3cret" not in repr(cfg)
    code, out, err = run_config_cli("config", "show", str(path))
    assert code == 0, err
    assert 'sasl_username = "svc"  # file' in out
    # validate without --env only checks the file: a deployment's CI has no secrets
    code, _, err = run_config_cli("config", "validate", str(path))
    assert code == 0, err


def test_collector_groups_and_selection(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[collectors]]\ngroup = 'spot'\nexchange = 'binance'\nsymbols = ['BTCUSDT']\n"
        "[[collectors]]\ngroup = 'canary'\nexchange = 'binance'\nsymbols = ['ETHUSDT']\nchannels = ['trades']\n",
    )
    cfg = load_config(path, {"TICKTAPE_COLLECT_GROUP": "canary"})
    assert list(cfg.groups()) == ["spot", "canary"]
    (selected,) = cfg.selected_collectors()
    assert selected.symbols == ("ETHUSDT",) and selected.channels == ("trades",)
    with pytest.raises(
        ConfigError, match=r"collect.group: no collector group 'nope' \(groups: spot, canary\)"
    ):
        load_config(path, {"TICKTAPE_COLLECT_GROUP": "nope"})
    adhoc = load_config(path, {}, {"collect.exchange": "binance", "collect.symbols": "SOLUSDT,ADAUSDT"})
    (one,) = adhoc.selected_collectors()
    assert one.symbols == ("SOLUSDT", "ADAUSDT")


def test_locate_keys_handles_arrays_and_dotted_tables() -> None:
    text = (
        "# comment\n[transport.kafka]\nbootstrap = 'a:1'\n[[collectors]]\nsymbols = [\n  'A',\n"
        "  'B',\n]\nexchange = 'x'\n[[collectors]]\nexchange = 'y'\n"
    )
    lines = locate_keys(text)
    assert lines["transport.kafka.bootstrap"] == 3
    assert lines["collectors[0].symbols"] == 5
    assert lines["collectors[0].exchange"] == 9
    assert lines["collectors[1].exchange"] == 11


def test_keys_reference_lists_every_setting() -> None:
    code, out, err = run_config_cli("config", "keys", "--format", "markdown")
    assert code == 0, err
    for key, setting in SETTINGS.items():
        assert f"`{key}`" in out and f"`{setting.env}`" in out
    assert env_name("transport.kafka.bootstrap") == "TICKTAPE_TRANSPORT_KAFKA_BOOTSTRAP"


# ---- --config on a command: every flag gets a key and an environment variable


def fake_command(seen: list[argparse.Namespace]) -> argparse.ArgumentParser:
    """A command shaped like the real ones (sink-like), to exercise enable_config without them."""
    parser = argparse.ArgumentParser(prog="ticktape")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sink")
    p.add_argument("--lake", required=True)
    p.add_argument("--transport", choices=("local", "kafka", "kinesis"), default="local")
    p.add_argument("--log", default="ticktape-log", help="log directory (default %(default)s)")
    p.add_argument("--until-idle", type=float, default=None)
    p.add_argument("--batch-rows", type=int, default=1000)
    p.add_argument("--verify", action="store_true")
    p.add_argument("--kinesis-stream")
    p.add_argument("--endpoint-url")

    def func(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    p.set_defaults(func=func)
    enable_config(p, "sink")
    return parser


def run_fake(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> tuple[int, argparse.Namespace | None]:
    for name in list(__import__("os").environ):
        if name.startswith("TICKTAPE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[argparse.Namespace] = []
    parser = fake_command(seen)
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, (seen[0] if seen else None)


def test_command_flags_resolve_from_file_env_and_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        '[lake]\npath = "/lake"\n[transport]\nkind = "kafka"\n[transport.kafka]\nbootstrap = "k:9092"\n'
        "[sink]\nuntil_idle = 10\nbatch_rows = 500\nverify = true\n",
    )
    code, args = run_fake(["sink", "--config", str(path)], monkeypatch, {})
    assert code == 0 and args is not None
    assert (args.lake, args.transport, args.until_idle, args.batch_rows, args.verify) == (
        "/lake",
        "kafka",
        10.0,
        500,
        True,
    )
    assert args.log == "ticktape-log"  # the command's own default when nothing sets it
    assert args.config_obj.transport.kafka.bootstrap == "k:9092"
    # env beats file, flags beat env; the config object sees the flag too
    code, args = run_fake(
        ["sink", "--config", str(path), "--lake", "/cli", "--batch-rows", "7"],
        monkeypatch,
        {"TICKTAPE_LAKE_PATH": "/env", "TICKTAPE_SINK_BATCH_ROWS": "9", "TICKTAPE_SINK_UNTIL_IDLE": "3"},
    )
    assert args is not None
    assert (args.lake, args.batch_rows, args.until_idle) == ("/cli", 7, 3.0)
    assert args.config_obj.lake.path == "/cli"
    # --endpoint-url of a transport command is the Kinesis endpoint
    code, args = run_fake(["sink", "--lake", "x", "--endpoint-url", "http://127.0.0.1:5000"], monkeypatch, {})
    assert args is not None and args.config_obj.transport.kinesis.endpoint_url == "http://127.0.0.1:5000"
    # TICKTAPE_CONFIG names the file when --config is absent
    code, args = run_fake(["sink"], monkeypatch, {"TICKTAPE_CONFIG": str(path)})
    assert args is not None and args.lake == "/lake"


def test_command_config_errors_exit_2_with_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, args = run_fake(["sink"], monkeypatch, {})
    assert code == 2 and args is None
    err = capsys.readouterr().err
    assert "lake.path: required: give --lake, set TICKTAPE_LAKE_PATH, or set it in --config" in err
    path = write(tmp_path, "[sink]\nbatch_rowz = 1\nlake = 'x'\nuntil_idle = 'soon'\n")
    code, args = run_fake(["sink", "--config", str(path), "--lake", "l"], monkeypatch, {})
    assert code == 2 and args is None
    err = capsys.readouterr().err
    assert "sink.batch_rowz: not an option of `ticktape sink` (did you mean 'batch_rows'?)" in err
    assert "sink.lake: not an option of `ticktape sink` (set lake.path instead)" in err
    assert "sink.until_idle: invalid value" in err
    code, _ = run_fake(["sink", "--lake", "l"], monkeypatch, {"TICKTAPE_TRANSPORT_KIND": "smoke"})
    assert code == 2
    assert "env TICKTAPE_TRANSPORT_KIND: transport.kind: 'smoke' is not one of" in capsys.readouterr().err


def test_help_still_shows_command_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    parser = fake_command([])
    with pytest.raises(SystemExit):
        parser.parse_args(["sink", "--help"])
    out = capsys.readouterr().out
    assert "log directory (default ticktape-log)" in out
    assert "--config FILE" in out
    assert repr(UNSET) not in out  # no sentinel leaks into the help


def test_readme_configuration_reference_is_generated_from_the_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "<!-- deployment -->" in readme
    begin, end = "<!-- config-keys:begin -->\n", "\n<!-- config-keys:end -->"
    assert begin in readme and end in readme, "README: configuration reference markers missing"
    documented = readme.split(begin, 1)[1].split(end, 1)[0].splitlines()
    code, generated, err = run_config_cli("config", "keys", "--format", "markdown")
    assert code == 0, err
    # thresholds derived from quality.scoring.QualityConfig may grow without a README change (the
    # README sends readers to `ticktape config keys` for them); every other row must be current
    quality_fields = {f.name for f in dataclasses.fields(QualityConfig)}
    for row in generated.splitlines():
        key = row.split("`")[1] if row.startswith("| `") else ""
        if key.startswith("thresholds.") and key.split(".", 1)[1] in quality_fields:
            continue
        assert row in documented, (
            f"README's configuration reference is stale (paste `ticktape config keys --format markdown`): {row}"
        )


def test_file_only_settings_reach_the_transport_and_the_quality_layer(tmp_path: Path) -> None:
    from ticktape.cli import build_parser
    from ticktape.config import quality_config_of
    from ticktape.transport_args import publisher_from_args, transport_options

    path = write(
        tmp_path,
        '[transport]\nkind = "kafka"\n[transport.kafka]\nbootstrap = "k:9092"\nlinger_ms = 25\n'
        'compression = "none"\nidempotence = "off"\nsecurity_protocol = "SASL_PLAINTEXT"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "svc"\n'
        "[thresholds]\nevent_age_limit_s = 4\nok_score = 95\n[thresholds.event_age_limits]\nokx = 9\n"
        "[[collectors]]\ngroup = 'spot'\nexchange = 'binance'\nsymbols = ['BTCUSDT', 'ETHUSDT']\nchannels = ['trades']\n",
    )
    env = {"TICKTAPE_CONFIG": str(path), "TICKTAPE_TRANSPORT_KAFKA_SASL_PASSWORD": "pw"}
    args = build_parser().parse_args(["collect"])
    cfg = args.config_resolver(args, env)
    args.config_obj = cfg
    # the collector group filled collect's own flags
    assert (args.exchange, args.symbols, args.channels) == ("binance", "BTCUSDT,ETHUSDT", "trades")
    options = transport_options(args)
    assert options["bootstrap"] == "k:9092" and options["linger_ms"] == 25
    assert options["compression"] == "none"  # reaches the producer, whose own default is zstd
    assert options["idempotence"] == "off"
    assert options["extra"] == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
    }
    publisher = publisher_from_args(args)
    assert publisher.settings.linger_ms == 25 and publisher.settings.extra["sasl_plain_username"] == "svc"  # type: ignore[attr-defined]
    quality = quality_config_of(args)
    assert quality.event_age_limit("okx") == 9 and quality.event_age_limit("binance") == 4
    assert quality.ok_score == 95
    # without a file nothing changes: the transport keeps its own defaults
    plain = build_parser().parse_args(
        [
            "collect",
            "--exchange",
            "binance",
            "--symbols",
            "X",
            "--transport",
            "kafka",
            "--kafka-bootstrap",
            "k:1",
        ]
    )
    plain.config_obj = plain.config_resolver(plain, {})
    assert set(transport_options(plain)) == {"bootstrap", "fsync", "policy"}


def test_event_age_limits_table_errors() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"TICKTAPE_THRESHOLDS_EVENT_AGE_LIMITS": "okx=fast"})
    assert [str(i) for i in info.value.issues] == [
        "env TICKTAPE_THRESHOLDS_EVENT_AGE_LIMITS: thresholds.event_age_limits: okx: expected a number, got 'fast'"
    ]
    with pytest.raises(ConfigError, match=r"thresholds\.event_age_limits: unknown exchange 'nasdaq'"):
        load_config(None, {"TICKTAPE_THRESHOLDS_EVENT_AGE_LIMITS": "nasdaq=3"})
    assert load_config(
        None, {"TICKTAPE_THRESHOLDS_EVENT_AGE_LIMITS": "okx=3,kraken=4"}
    ).thresholds.event_age_limits == {
        "okx": 3.0,
        "kraken": 4.0,
    }


def test_validate_checks_command_tables_against_the_real_commands(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[lake]\npath = '/l'\n\n[sink]\nflush_rows = 'many'\nuntil_idle = 5\nlake = '/x'\n\n"
        "[collect]\ngroup = 'g'\nduration = 'long'\n\n[compact]\nallow_brief_gap = 'yes'\ndatee = '2024-01-01'\n\n"
        "[[collectors]]\ngroup = 'g'\nexchange = 'binance'\nsymbols = ['BTCUSDT']\n",
    )
    code, out, err = run_config_cli("config", "validate", str(path))
    assert code == 1, out
    lines = err.splitlines()
    assert (
        f"{path}:5: sink.flush_rows: invalid value: invalid literal for int() with base 10: 'many'" in lines
    )
    assert f"{path}:7: sink.lake: not an option of `ticktape sink` (set lake.path instead)" in lines
    assert f"{path}:11: collect.duration: invalid value: could not convert string to float: 'long'" in lines
    assert f"{path}:14: compact.allow_brief_gap: expected a boolean (true/false), got 'yes'" in lines
    assert f"{path}:15: compact.datee: not an option of `ticktape compact` (did you mean 'date'?)" in lines
    assert f"{path}: 5 error(s)" in lines


def test_show_prints_the_resolved_configuration_as_valid_toml(tmp_path: Path) -> None:
    code, out, err = run_config_cli("config", "show", str(EXAMPLE))
    assert code == 0, err
    shown = write(tmp_path, out, "shown.toml")
    original, again = load_config(EXAMPLE, check_secrets=False), load_config(shown, check_secrets=False)
    for key in SETTINGS:
        assert again.value(key) == original.value(key), key
    assert again.collectors == original.collectors
    assert again.commands == original.commands
    assert "# file" in out and "# default" in out


def test_every_command_takes_config_and_maps_every_flag() -> None:
    import argparse as ap

    from ticktape.cli import COMMAND_MODULES, build_parser
    from ticktape.config import key_for

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, ap._SubParsersAction)]
    assert set(sub.choices) == set(COMMAND_MODULES), "a command module failed to register"
    for name, command in sub.choices.items():
        if name == "config":  # its options are about the configuration itself
            continue
        assert command.get_default("config_resolver") is not None, (
            f"`ticktape {name}` lacks --config (enable_config)"
        )
        dests = {a.dest for a in command._actions}
        for action in command._actions:
            if not action.option_strings or action.dest in ("help", "config"):
                continue
            key = key_for(name, action.dest, dests)
            # a shared key is a documented setting; any other flag is `[<command>] <dest>`
            assert key in SETTINGS or key == f"{name}.{action.dest}", (name, action.dest, key)
            assert env_name(key).startswith("TICKTAPE_")


def test_validate_env_warns_about_variables_nothing_reads() -> None:
    env = {"TICKTAPE_SINK_UNTIL_IDLE": "3", "TICKTAPE_SINK_UNTIL_IDEL": "3", "TICKTAPE_LAKE_PATH": "/x"}
    code, out, err = run_config_cli("config", "validate", "--env", "--json", str(EXAMPLE), env=env)
    assert code == 0, err
    result = json.loads(out)
    assert result["warnings"] == ["env TICKTAPE_SINK_UNTIL_IDEL: no setting reads this variable"]
    assert result["lake"] == "/x"


def test_stale_thresholds_and_rotation_age_reach_the_connection_layer(tmp_path: Path) -> None:
    """One declaration of the staleness defaults; configured values and the rotation age reach the
    collector's settings, and without one each exchange rotates before its own forced disconnect."""
    from collectors.base import DEFAULT_RECYCLE_AFTER_S, DEFAULT_STALE_AFTER_S
    from collectors.connection import Collector, ConnectionSettings
    from collectors.registry import get_dialect
    from ticktape.cli import build_parser
    from ticktape.commands.collect import connection_settings_of

    def resolved(text: str | None, *flags: str) -> ConnectionSettings:
        env = {}
        if text is not None:
            env["TICKTAPE_CONFIG"] = str(write(tmp_path, text))
        args = build_parser().parse_args(["collect", "--exchange", "binance", "--symbols", "BTCUSDT", *flags])
        args.config_obj = args.config_resolver(args, env)
        return connection_settings_of(args)

    default = resolved(None)
    assert default.stale_after_s == DEFAULT_STALE_AFTER_S == ConnectionSettings().stale_after_s
    assert default.recycle_after_s == DEFAULT_RECYCLE_AFTER_S and default.max_connection_age_s is None
    configured = resolved(
        "[thresholds]\nstale_book_s = 7\nstale_trades_s = 90\n[collect]\nmax_connection_age_s = 10\n"
    )
    # the configured market channels; the derivatives channels keep their defaults
    assert configured.stale_after_s == {**DEFAULT_STALE_AFTER_S, "book": 7.0, "bbo": 7.0, "trades": 90.0}
    assert configured.max_connection_age_s == 10.0
    assert resolved(None, "--max-connection-age", "0").max_connection_age_s == 0.0

    async def noop(_: object) -> None:
        return None

    def age_of(exchange: str, settings: ConnectionSettings) -> float | None:
        return Collector(
            get_dialect(exchange), ["BTC-USDT"], noop, settings=settings
        ).settings.max_connection_age_s

    assert age_of("binance", default) == 23 * 3600  # Binance closes at 24 h: rotate an hour before
    assert age_of("okx", default) == 0.0  # no forced disconnect documented: no rotation
    assert age_of("binance", configured) == 10.0
