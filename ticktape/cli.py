"""The ``ticktape`` command line. Each subcommand lives in ``ticktape/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser with ``set_defaults(func=...)``; ``func(args)`` returns
the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

#: Subcommand modules, in the order ``ticktape --help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "collect",
    "simulate",
    "replay",
    "sink",
    "demo",
    "ls",
    "query",
    "report",
    "compact",
    "sync",
    "book",
    "config",
    "serve",
    "quality",
    "validate",
)


def command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named on a command line, or None (help, a typo, no command)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in COMMAND_MODULES else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand, or only ``only``'s.

    Registering one command imports only its module: a replay does not pay for DuckDB, aiohttp or
    Great Expectations (about 1 s of start-up per process, bench/RESULTS.md).
    """
    parser = argparse.ArgumentParser(
        prog="ticktape",
        description="Capture crypto exchange market data and know how fresh and trustworthy it is.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in (only,) if only is not None else COMMAND_MODULES:
        try:
            module = importlib.import_module(f"ticktape.commands.{name}")
        except ModuleNotFoundError as exc:
            # Only a command whose own module is absent is left out (tests/ticktape/test_cli.py
            # asserts that none is); a missing dependency inside a command still fails loudly.
            if exc.name != f"ticktape.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


#: Set when SIGTERM reached the default handler below (batch roles keep it for their whole run).
_SIGTERM_RECEIVED: list[bool] = []


def _exit_on_early_sigterm(signum: int, frame: object) -> None:
    # A SIGTERM that arrives before a role installed its own graceful handler: nothing is open yet.
    # Batch roles (compact, sync, validate) keep this handler: their work is atomic or read-only.
    _SIGTERM_RECEIVED.append(True)
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ticktape`` command."""
    signal.signal(signal.SIGTERM, _exit_on_early_sigterm)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=command_in(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`ticktape query ... | head`): no traceback; stdout goes to
        # /dev/null so that the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception:
        if not _SIGTERM_RECEIVED:
            raise
        # a library turned the SIGTERM exit into its own error (DuckDB: "Query interrupted")
        logging.getLogger("ticktape").warning("stopped by SIGTERM")
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
