"""The ``ticktape`` command line. Each subcommand lives in ``ticktape/commands/<name>.py`` and exposes
``register(subparsers)``, which adds its parser with ``set_defaults(func=...)``; ``func(args)`` returns
the exit code.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

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
    "renormalise",
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
    # numpy (imported by pyarrow) starts an OpenBLAS thread per core, which spins for a while after
    # import: ~0.13 CPU s of a 1.3 s replay on 2 cores, taken from the threads doing the work. ticktape
    # does no linear algebra; a value the user set is kept. Set before any command module is imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(only=command_in(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ticktape.config import MaskSecretsFilter, mask_secrets

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaskSecretsFilter) for f in handler.filters):
            handler.addFilter(MaskSecretsFilter())
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of stdout went away (`ticktape query ... | head`): no traceback; stdout goes to
        # /dev/null so that the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if _SIGTERM_RECEIVED:
            # a library turned the SIGTERM exit into its own error (DuckDB: "Query interrupted")
            logging.getLogger("ticktape").warning("stopped by SIGTERM")
            return 0
        # Never a traceback for the user: what failed and what to do (the traceback at DEBUG).
        logging.getLogger("ticktape").debug("%s failed", args.command, exc_info=True)
        print(f"ticktape {args.command}: {mask_secrets(describe_failure(exc, args))}", file=sys.stderr)
        return 1
    return code


def describe_failure(exc: BaseException, args: argparse.Namespace | None = None) -> str:
    """One or two lines naming what failed and what to do, for an error no command handled itself."""
    text = str(exc)
    if isinstance(exc, OSError):
        detail = exc.strerror or text
        if exc.errno == errno.EADDRINUSE or "address already in use" in text:
            if "--port" in detail:
                return detail
            return (
                f"cannot listen: {detail}\nanother process holds that port: choose another with --port "
                "(--metrics-port for the sink; 0 picks a free one)"
            )
        if exc.errno == errno.ENOSPC or "No space left on device" in text:
            where = f" ({exc.filename})" if exc.filename else ""
            return f"disk full: {detail}{where}\nfree space there or point the command at another directory"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied: {text}"
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("aiokafka") and ("bootstrap" in text.lower() or "connect" in name.lower()):
        servers = getattr(args, "kafka_bootstrap", None) or text.removeprefix(name + ": ")
        return (
            f"Kafka unreachable at {servers}: no broker answered\n"
            "check --kafka-bootstrap (HOST:PORT[,HOST:PORT]) and that the brokers are up"
        )
    if module.startswith(("botocore", "boto3")):
        return f"AWS error: {text}\ncheck --endpoint-url, the region and the credentials (standard AWS chain)"
    return f"{name}: {text}\n(run with --log-level DEBUG for the details)"


def entry() -> NoReturn:
    """The ``ticktape`` executable: :func:`main`, then exit.

    What is alive at the end moves to the permanent generation first (``gc.freeze``), so that the
    interpreter's final collections do not walk every object of numpy, pyarrow and the command's
    state: ~30 ms of every command's exit (of a 1.25 s replay). Nothing of ours relies on a collection
    at exit; files and connections are closed by the commands.
    https://docs.python.org/3/library/gc.html#gc.freeze (checked 2026-12-06).
    """
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
