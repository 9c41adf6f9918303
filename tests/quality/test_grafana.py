"""Grafana provisioning: dashboards parse, use the provisioned datasource, and every query is valid
PromQL (checked by promtool) over metrics the exporter serves or rules that record them."""

from __future__ import annotations

import json
import re

import yaml

from tests.quality.exposition import served_names, ticktape_names
from tests.quality.test_prometheus import RULES, run
from tests.support.services import ROOT

GRAFANA = ROOT / "infra" / "grafana"


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def exprs(dash: dict) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboards_are_provisioned_and_query_what_exists(tmp_path):
    sources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "ticktape-prometheus.yml").read_text()
    )
    uid = sources["datasources"][0]["uid"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ticktape.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    boards = dashboards()
    assert set(boards) == {"ticktape-fleet.json", "ticktape-exchange.json"}
    assert len({d["uid"] for d in boards.values()}) == 2
    fleet_types = {p["type"] for p in boards["ticktape-fleet.json"]["panels"]}
    assert "state-timeline" in fleet_types  # states over time
    assert boards["ticktape-exchange.json"]["templating"]["list"][0]["name"] == "exchange"

    recorded = set(re.findall(r"record: (\S+)", RULES.read_text()))
    served = served_names()
    all_exprs = []
    for name, dash in boards.items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in dash["panels"]:
            assert p["datasource"]["uid"] == uid, (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == uid
        for expr in exprs(dash):
            missing = ticktape_names(expr) - served
            assert not missing, (name, expr, missing)
            for level_name in re.findall(r"\b(\w+:\w+:\w+)\b", expr):
                assert level_name in recorded, (name, level_name)
            all_exprs.append(expr)
    # promtool parses every query (Grafana variables replaced by a literal)
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e.replace("$exchange", "okx")} for i, e in enumerate(all_exprs)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = run("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
