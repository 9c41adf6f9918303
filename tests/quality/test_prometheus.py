"""Prometheus rules: ``promtool check rules`` and ``promtool test rules`` (the 30 s incident included),
and every ticktape metric the rules use exists in what the quality exporter serves."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from prometheus_client import generate_latest

from quality.live import QualityTracker
from quality.metrics import tracker_registry
from schemas import RecordBuffer
from tests.support.services import ROOT

PROM_DIR = ROOT / "infra" / "prometheus"
RULES = PROM_DIR / "ticktape-rules.yml"
RULE_TESTS = PROM_DIR / "tests" / "ticktape-rules.test.yml"
SLOW_RULE_TESTS = PROM_DIR / "tests" / "ticktape-slow.test.yml"
#: metrics that other processes export (sink, sync: see infra/prometheus/README.md), and Prometheus' own
EXTERNAL = {
    "ticktape_sink_lag_seconds",
    "ticktape_sync_failures_total",
    "ticktape_sync_last_success_timestamp_seconds",
}


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
    tracker = QualityTracker()
    now = time.time_ns()
    out = RecordBuffer()
    out.trades.append(("okx", "BTC-USDT", now - 5_000_000, now, "1", 1.0, 1.0, "buy", 0))
    out.feed_events.append(("okx", "BTC-USDT", "book", now, "gap", "{}"))
    tracker.observe(out)
    tracker.snapshot()
    exposition = generate_latest(tracker_registry(tracker)).decode()
    served = set(re.findall(r"^(ticktape_[a-z_]+)", exposition, re.M))
    used = set(re.findall(r"(?<![:\w])(ticktape_[a-z_0-9]+)", RULES.read_text())) - EXTERNAL
    missing = sorted(name for name in used if name not in served)
    assert not missing, f"rules use metrics the exporter does not serve: {missing}"
    assert not re.search(r'symbol="', exposition)
