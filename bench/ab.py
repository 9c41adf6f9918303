"""Before/after in one run: a bench module run in two source trees, interleaved, same venv and input.

``python -m bench.ab --before DIR [--rounds N] -- replay --frames 500000`` runs ``python -m
bench.<module> --no-save <args>`` with the working directory set to ``DIR`` (the code before, e.g. a
``git worktree`` of the base commit, its packages byte-compiled like ``make install`` does) and to
this tree, alternating, ``--rounds`` times each; every run prints its JSON line, then the median of
each side per figure and their ratio. Alternating the two sides spreads the neighbours' load over
both, which separate runs minutes apart do not.
"""

from __future__ import annotations

import argparse
import compileall
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]
PACKAGES = ("collectors", "schemas", "storage", "streaming", "ticktape", "quality", "bench")


def compile_tree(tree: Path) -> None:
    """Byte-compiles a tree's packages (the environment sets PYTHONDONTWRITEBYTECODE: a stale tree
    would recompile every changed module in every process)."""
    for pkg in PACKAGES:
        if (tree / pkg).is_dir():
            compileall.compile_dir(tree / pkg, quiet=1)


def run(tree: Path, module: str, args: list[str]) -> list[dict[str, Any]]:
    """One run of ``bench.<module>`` in ``tree``; its JSON lines (one per measured input)."""
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--no-save", *args],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", required=True, type=Path, help="source tree of the code before")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("module", help="bench module (replay, normalise, ...)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = p.parse_args(argv)
    trees = {"before": a.before.resolve(), "after": HERE}
    for tree in trees.values():
        compile_tree(tree)
    runs: dict[str, list[list[dict[str, Any]]]] = {side: [] for side in trees}
    for _ in range(a.rounds):
        for side, tree in trees.items():
            results = run(tree, a.module, [x for x in a.args if x != "--"])
            runs[side].append(results)
            for result in results:
                print(json.dumps({"side": side, **result}), flush=True)
    for i, first in enumerate(runs["after"][0]):
        summarise(first, [r[i] for r in runs["before"]], [r[i] for r in runs["after"]])
    return 0


def summarise(
    first: dict[str, Any], before_runs: list[dict[str, Any]], after_runs: list[dict[str, Any]]
) -> None:
    """Prints the medians of one measured input (the i-th JSON line of every run) and their ratio."""
    summary: dict[str, Any] = {k: v for k, v in first.items() if isinstance(v, str)}
    for key, value in first.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            if any(key not in r for r in before_runs):  # a figure the code before does not measure
                summary[key] = {"after": statistics.median(r[key] for r in after_runs)}
                continue
            before = statistics.median(r[key] for r in before_runs)
            after = statistics.median(r[key] for r in after_runs)
            summary[key] = {
                "before": before,
                "after": after,
                "after/before": after / before if before else None,
            }
    print(json.dumps({"summary": summary}, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
