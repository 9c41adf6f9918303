"""Prometheus rules: ``promtool check rules`` and ``promtool test rules`` (the 30 s incident included),
and every ticktape metric the rules use exists in what the quality exporter serves."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.quality.exposition import EXTERNAL, exposition, served_names, ticktape_names
from tests.support.services import ROOT

PROM_DIR = ROOT / "infra" / "prometheus"
RULES = PROM_DIR / "ticktape-rules.yml"
RULE_TESTS = PROM_DIR / "tests" / "ticktape-rules.test.yml"
SLOW_RULE_TESTS = PROM_DIR / "tests" / "ticktape-slow.test.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (make system-deps, as root)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120)


def test_promtool_check_and_test_rules():
    checked = run("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    tested = run("test", "rules", *(str(p.relative_to(PROM_DIR)) for p in (RULE_TESTS, SLOW_RULE_TESTS)))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.count("SUCCESS") == 2
    # every alert rule has a unit test, and the incident test asserts that its alert fires
    text = RULE_TESTS.read_text() + SLOW_RULE_TESTS.read_text()
    for alert in re.findall(r"- alert: (\w+)", RULES.read_text()):
        assert f"alertname: {alert}\n        exp_alerts:\n          - exp_labels" in text, alert
    assert "values: '0.1x20 30x60'" in RULE_TESTS.read_text()


def test_rules_use_only_metrics_the_exporter_serves():
    served = served_names()
    used = ticktape_names(RULES.read_text()) - EXTERNAL
    missing = sorted(name for name in used if name not in served)
    assert not missing, f"rules use metrics the exporter does not serve: {missing}"
    assert not re.search(r'symbol="', exposition())
