"""``ticktape config``: validate a deployment configuration, show it resolved, list every key.

- ``ticktape config validate FILE [--env] [--json]``: every error, each with its location; exit 1 on
  errors. ``--env`` also applies (and checks) the ``TICKTAPE_*`` environment and secret requirements.
- ``ticktape config show [FILE]``: the resolved configuration as TOML, each value with its source;
  secrets are masked.
- ``ticktape config keys [--format text|markdown]``: the reference of every key, its environment
  variable, flags and default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ticktape.config import (
    COLLECTOR_KEYS,
    CONFIG_ENV,
    SETTINGS,
    Config,
    ConfigError,
    ConfigIssue,
    command_section_issues,
    env_name,
    key_for,
    load_config,
    mask_secrets,
    reference_rows,
    unknown_env,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds ``ticktape config`` and its subcommands."""
    parser = subparsers.add_parser("config", help="validate, show and document the deployment configuration")
    sub = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    validate = sub.add_parser(
        "validate", help="check a configuration file; report every error with its location"
    )
    validate.add_argument("file", help="TOML configuration file")
    validate.add_argument(
        "--env", action="store_true", help="also apply and check the TICKTAPE_* environment"
    )
    validate.add_argument("--json", action="store_true", help="print the result as JSON")
    validate.set_defaults(func=_validate)

    show = sub.add_parser("show", help="print the resolved configuration with the source of each value")
    show.add_argument("file", nargs="?", help=f"TOML configuration file (default: ${CONFIG_ENV})")
    show.set_defaults(func=_show)

    keys = sub.add_parser("keys", help="list every configuration key, environment variable and flag")
    keys.add_argument("--format", choices=("text", "markdown"), default="text", help="output format")
    keys.set_defaults(func=_keys)


def _command_issues(cfg: Config) -> list[ConfigIssue]:
    """Checks ``[<command>]`` sections against the real flags of each command."""
    if not cfg.commands:
        return []
    from ticktape.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    issues: list[ConfigIssue] = []
    for command in cfg.commands:
        sub = subparsers.choices.get(command)
        issues.extend(command_section_issues(cfg, command, list(sub._actions) if sub is not None else []))
    return issues


def _command_env_names(env: dict[str, str] | None) -> set[str]:
    """The ``TICKTAPE_<COMMAND>_<OPTION>`` variables of every command's own flags."""
    if not env:
        return set()
    from ticktape.cli import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names: set[str] = set()
    for command, sub in subparsers.choices.items():
        dests = {a.dest for a in sub._actions}
        names.update(env_name(key_for(command, a.dest, dests)) for a in sub._actions if a.option_strings)
    return names


def _validate(args: argparse.Namespace) -> int:
    env = dict(os.environ) if args.env else None
    issues: list[ConfigIssue] = []
    cfg: Config | None = None
    try:
        cfg = load_config(args.file, env)
    except ConfigError as exc:
        issues = list(exc.issues)
    if cfg is not None:
        issues.extend(_command_issues(cfg))
    warnings = [
        f"env {name}: no setting reads this variable"
        for name in unknown_env(env or {}, _command_env_names(env))
    ]
    summary: dict[str, Any] = {"file": args.file, "ok": not issues, "errors": [str(i) for i in issues]}
    if warnings:
        summary["warnings"] = warnings
    if cfg is not None and not issues:
        groups = cfg.groups()
        summary.update(
            groups={name: [c.exchange for c in cs] for name, cs in groups.items()},
            symbols=sum(len(c.symbols) for c in cfg.collectors),
            transport=cfg.transport.kind,
            lake=cfg.lake.path,
        )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if issues:
            for issue in issues:
                print(issue, file=sys.stderr)
            print(f"{args.file}: {len(issues)} error(s)", file=sys.stderr)
        else:
            assert cfg is not None
            groups_text = (
                ", ".join(f"{g} ({len(cs)} exchange(s))" for g, cs in cfg.groups().items()) or "none"
            )
            print(
                f"{args.file}: ok: transport {cfg.transport.kind}, lake {cfg.lake.path}, "
                f"{summary['symbols']} symbol(s) in collector groups {groups_text}"
            )
    return 1 if issues else 0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _show(args: argparse.Namespace) -> int:
    path = args.file or os.environ.get(CONFIG_ENV) or None
    try:
        cfg = load_config(path, dict(os.environ), check_secrets=False)
    except ConfigError as exc:
        for issue in exc.issues:
            print(mask_secrets(str(issue)), file=sys.stderr)
        return 1
    table = ""
    for key, setting in SETTINGS.items():
        section, name = key.rsplit(".", 1)
        if section != table:
            print(f"\n[{section}]")
            table = section
        value = cfg.value(key)
        source = cfg.sources.get(key, "default")
        if value is None:
            print(f"# {name} = (unset)  # {source}")
        elif setting.secret:
            print(f"# {name} = ********  # {source}")
        else:
            print(f"{name} = {mask_secrets(_toml_value(value))}  # {source}")
    for command, options in cfg.commands.items():
        print(f"\n[{command}]")
        for name, value in options.items():
            print(f"{name} = {mask_secrets(_toml_value(value))}  # file")
    for c in cfg.collectors:
        print("\n[[collectors]]")
        for name in COLLECTOR_KEYS:
            value = getattr(c, name)
            if value is not None:
                print(f"{name} = {mask_secrets(_toml_value(value))}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    rows = reference_rows()
    if args.format == "markdown":
        print("| key | environment variable | flag | default | meaning |")
        print("|---|---|---|---|---|")
        for key, env, flags, default, doc in rows:
            cells = [
                f"`{key}`",
                f"`{env}`",
                f"`{flags}`" if flags else "",
                f"`{default}`" if default else "",
                doc,
            ]
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        print()
        print("Per `[[collectors]]` entry (one exchange in a collector group):")
        print()
        print("| key | meaning |")
        print("|---|---|")
        for name, doc in COLLECTOR_KEYS.items():
            print(f"| `{name}` | {doc} |")
    else:
        width = max(len(r[0]) for r in rows)
        for key, env, flags, default, doc in rows:
            extra = f" [{flags}]" if flags else ""
            print(f"{key:<{width}}  {env}{extra}  default {default or '-'}: {doc}")
        for name, doc in COLLECTOR_KEYS.items():
            print(f"{'collectors[].' + name:<{width}}  {doc}")
    return 0
