"""The command line: every listed command exists and registers."""

from __future__ import annotations

import importlib

import pytest

from ticktape.cli import COMMAND_MODULES, build_parser, main


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_every_command_module_exists_and_registers(name: str) -> None:
    module = importlib.import_module(f"ticktape.commands.{name}")
    assert callable(module.register)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    help_text = parser.format_help()
    for name in COMMAND_MODULES:
        assert name in help_text


def test_unknown_exchange_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    code = main(["collect", "--exchange", "nope", "--symbols", "X", "--log", str(tmp_path)])
    assert code == 2
    assert "unknown exchange 'nope'" in capsys.readouterr().err
