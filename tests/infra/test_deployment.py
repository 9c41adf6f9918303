"""Deployment files, checked offline: Kubernetes manifests against the Kubernetes schemas, the compose
file and the Dockerfile against the repository (every file, image, port, service and command they
name must exist and agree), and the container health check against a real HTTP server.

No Docker engine runs here, so nothing is built or started; what can be checked without one is.
"""

from __future__ import annotations

import argparse
import copy
import http.server
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.services import free_port
from ticktape.config import SETTINGS, load_config, unknown_env

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
COMPOSE = INFRA / "compose.yaml"
DOCKERFILE = INFRA / "Dockerfile"
#: The roles the one image runs (issue 6).
ROLES = ("collect", "sink", "serve", "sync", "compact", "validate")
#: Oldest Kubernetes with everything used here (CronJob timeZone), and a recent one.
K8S_VERSIONS = ("1.29", "1.33")
SERVER_PORT = SETTINGS["server.port"].default


# ---------------------------------------------------------------------------------------------- k8s


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every Kubernetes resource in infra/k8s."""
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((path.name, doc))
    return out


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource name, pod spec) of every workload."""
    for _, doc in manifests():
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def k8s_config_text() -> str:
    (cm,) = by_kind("ConfigMap")
    text: str = cm["data"]["ticktape.toml"]
    return text


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(version: str) -> None:
    docs = manifests()
    assert len(docs) >= 10
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_validator_rejects_a_broken_manifest() -> None:
    # the offline schemas really are applied: an unknown field and a wrong type both fail
    (deployment, *_) = by_kind("Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    broken = copy.deepcopy(deployment)
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest_and_the_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (image,) = kustomization["images"]
    assert image == {"name": "ticktape", "newTag": version}
    for name, spec in pod_specs():
        for c in containers(spec):
            if c["image"].startswith("ticktape:"):
                assert c["image"] == f"ticktape:{version}", f"{name}/{c['name']}: {c['image']}"
            else:  # helpers (the sync metrics exporter): pinned third-party images
                assert re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+", c["image"]), (
                    f"{name}/{c['name']}: pin {c['image']}"
                )


def test_configmap_configuration_validates_and_each_group_has_a_deployment(tmp_path: Path) -> None:
    path = tmp_path / "ticktape.toml"
    path.write_text(k8s_config_text())
    cfg = load_config(path, check_secrets=False)
    assert cfg.transport.kind == "kafka"
    collectors = [
        d
        for d in by_kind("Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "collector"
    ]
    groups_deployed: dict[str, list[dict[str, Any]]] = {}
    for d in collectors:
        (c,) = d["spec"]["template"]["spec"]["containers"]
        args = c["args"]
        assert args[:2] == ["collect", "--group"], args
        group = args[2]
        replica = args[args.index("--replica") + 1] if "--replica" in args else None
        suffix = f"-{replica}" if replica else ""
        assert d["metadata"]["name"] == f"ticktape-collect-{group}{suffix}"
        assert d["spec"]["template"]["metadata"]["labels"]["ticktape.io/group"] == group
        assert d["spec"]["template"]["metadata"]["labels"].get("ticktape.io/replica") == replica
        groups_deployed.setdefault(group, []).append(d)
    assert set(groups_deployed) == set(cfg.groups()), "one Deployment per collector group of the ConfigMap"
    for group, deployments in groups_deployed.items():
        # a group is one Deployment, or one Deployment per replica (two at least)
        assert len(deployments) == 1 or (
            len(deployments) >= 2
            and all("ticktape.io/replica" in d["metadata"]["labels"] for d in deployments)
        ), group


def test_replica_deployments_never_share_a_zone_and_run_distinct_replicas(tmp_path: Path) -> None:
    """One Deployment per replica of a group, each required to sit in another zone than its siblings."""
    by_group: dict[str, list[str]] = {}
    for d in by_kind("Deployment"):
        labels = d["spec"]["template"]["metadata"]["labels"]
        if "ticktape.io/replica" not in labels:
            continue
        group, replica = labels["ticktape.io/group"], labels["ticktape.io/replica"]
        pod = d["spec"]["template"]["spec"]
        (term,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "topology.kubernetes.io/zone"
        assert term["labelSelector"]["matchLabels"] == {
            "app.kubernetes.io/component": "collector",
            "ticktape.io/group": group,
        }
        assert d["spec"]["selector"]["matchLabels"]["ticktape.io/replica"] == replica  # selects only its pods
        (c,) = pod["containers"]
        args = resolve(
            c["args"], {e["name"]: e.get("value", "x") for e in c["env"]}, k8s_config_text(), tmp_path
        )
        from ticktape.commands.collect import _specs

        assert {spec.replica for spec in _specs(args)} == {replica}
        by_group.setdefault(group, []).append(replica)
    assert by_group, "no replica Deployments: README, 'Replicas' shows them"
    for group, replicas in by_group.items():
        assert len(replicas) >= 2 and len(set(replicas)) == len(replicas), group


def test_collector_deployments_have_probes_resources_spread_and_scrape_annotations() -> None:
    for d in by_kind("Deployment"):
        name = d["metadata"]["name"]
        spec = d["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items(), name
        if d["metadata"]["labels"]["app.kubernetes.io/component"] != "collector":
            continue
        pod = spec["template"]["spec"]
        (c,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        port = int(env["TICKTAPE_SERVER_PORT"])
        assert env["TICKTAPE_SERVER_HOST"] == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"http": port}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, (name, probe)
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == port
        assert annotations["prometheus.io/path"] == "/metrics"
        anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert anti[0]["podAffinityTerm"]["topologyKey"] == "topology.kubernetes.io/zone"
        assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
        assert spec["replicas"] == 1 and spec["strategy"]["rollingUpdate"]["maxSurge"] == 0
        assert pod["terminationGracePeriodSeconds"] >= 30


def test_every_pod_is_unprivileged_and_bounded() -> None:
    for name, spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in containers(spec):
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), where
            assert "memory" in c["resources"]["limits"], where
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"
            volumes = {v["name"] for v in spec["volumes"]}
            assert {m["name"] for m in c["volumeMounts"]} <= volumes, where


def test_environment_is_known_and_secrets_come_from_secrets() -> None:
    for name, spec in pod_specs():
        for c in containers(spec):
            env = c.get("env", [])
            names = {e["name"] for e in env}
            assert unknown_env(dict.fromkeys(names, "")) == [], f"{name}/{c['name']}"
            for e in env:
                if SETTINGS.get(_key_of(e["name"])) is not None and SETTINGS[_key_of(e["name"])].secret:
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], f"{name}: {e['name']}"


def _key_of(env_var: str) -> str:
    return next((k for k, s in SETTINGS.items() if s.env == env_var), "")


def test_sink_scales_with_partitions_and_daily_job_runs_in_order() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ticktape-sink"
    (sink,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "ticktape-sink"]
    assert "replicas" not in sink["spec"], "kubectl apply would reset what the autoscaler chose"
    partitions = int(
        yaml.safe_load(COMPOSE.read_text())["services"]["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]
    )
    assert hpa["spec"]["maxReplicas"] == partitions, "more sinks than partitions would sit idle"
    from streaming.kafka import KafkaSettings

    assert KafkaSettings().partitions == partitions, "the publisher creates the topics with this many"
    (cron,) = by_kind("CronJob")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    steps = [" ".join(c.get("args") or c["command"]) for c in containers(pod)]
    assert [re.search(r"\b(compact|sync|validate)\b", s).group(1) for s in steps] == [
        "compact",
        "sync",
        "validate",
    ]  # type: ignore[union-attr]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (pvc,) = by_kind("PersistentVolumeClaim")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for _, s in pod_specs()
        for v in s["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {pvc["metadata"]["name"]}
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_disruption_budgets_and_service_select_real_pods() -> None:
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind("Deployment")]
    for pdb in by_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), pdb["metadata"]["name"]
    (svc,) = by_kind("Service")
    (serve,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "ticktape-serve"]
    assert svc["spec"]["selector"].items() <= serve["spec"]["template"]["metadata"]["labels"].items()
    (c,) = serve["spec"]["template"]["spec"]["containers"]
    assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in c["ports"]}
    assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


# ------------------------------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def listen_port(name: str, service: dict[str, Any]) -> int:
    """The port a compose service listens on (ticktape: its server port; others: their own)."""
    if service["image"].startswith("ticktape:"):
        command = service.get("command", [])
        if "--metrics-port" in command:  # the sink serves only its metrics endpoint
            return int(command[command.index("--metrics-port") + 1])
        return int(compose_env(service)["TICKTAPE_SERVER_PORT"])
    for arg in service.get("command", []):
        if arg.startswith("--web.listen-address="):
            return int(arg.rsplit(":", 1)[1])
    return {"prometheus": 9090, "grafana": 3000, "kafka": 9092}[name]


def ticktape_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if s.get("image", "").startswith("ticktape:")}


def test_compose_parses_and_has_every_part_of_the_system() -> None:
    services = compose()["services"]
    assert {"kafka", "sink", "serve", "prometheus", "grafana"} <= set(services)
    config_path = INFRA / "../examples/ticktape.toml"
    cfg = load_config(config_path, check_secrets=False)
    collectors = {n.removeprefix("collect-") for n in services if n.startswith("collect-")}
    assert collectors == set(cfg.groups()), "one collector service per collector group of the mounted config"
    for group in collectors:
        assert services[f"collect-{group}"]["command"] == ["collect", "--group", group]
    kafka_env = services["kafka"]["environment"]
    assert (
        "broker" in kafka_env["KAFKA_PROCESS_ROLES"] and "controller" in kafka_env["KAFKA_PROCESS_ROLES"]
    ), "KRaft"


def test_compose_images_are_pinned_and_ticktape_is_built_here() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in compose()["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: pin the image tag ({image})"
        if image.startswith("ticktape:"):
            assert tag == version
            build = service["build"]
            context = (INFRA / build["context"]).resolve()
            assert context == ROOT
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert {s["image"] for s in compose()["services"].values() if "build" not in s} == {
        "apache/kafka:3.8.1",
        "prom/prometheus:v2.54.1",
        "grafana/grafana:11.2.2",
        "prom/node-exporter:v1.8.2",
    }


def test_compose_references_only_existing_files_volumes_and_services() -> None:
    data = compose()
    named = set(data["volumes"])
    services = data["services"]
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (INFRA / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        depends = service.get("depends_on", [])
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name}: depends on unknown service {target}"


def test_compose_ports_are_loopback_unique_and_served() -> None:
    seen: set[int] = set()
    for name, service in compose()["services"].items():
        for spec in service.get("ports", []):
            host, host_port, container_port = str(spec).split(":")
            assert host == "127.0.0.1", f"{name}: publish on loopback only ({spec})"
            assert int(host_port) not in seen
            seen.add(int(host_port))
            expected = listen_port(name, service)
            assert int(container_port) == expected, f"{name}: nothing listens on {container_port}"


def test_compose_replicas_variant_runs_two_replicas_of_one_group(tmp_path: Path) -> None:
    """compose.replicas.yaml (an override of compose.yaml): two collector services of one group, with
    replicas a and b, otherwise the same service."""
    variant: dict[str, Any] = yaml.safe_load((INFRA / "compose.replicas.yaml").read_text())
    services = variant["services"]
    base = compose()["services"]
    b = services["collect-binance-spot-b"]
    assert b["extends"] == {"file": "compose.yaml", "service": "collect-binance-spot"}
    assert (INFRA / b["extends"]["file"]).resolve() == COMPOSE.resolve()
    replicas = {}
    for name in ("collect-binance-spot", "collect-binance-spot-b"):
        command = services[name]["command"]
        merged = {**base["collect-binance-spot"], "command": command}
        env = {k: _interpolate(v) for k, v in compose_env(merged).items()}
        mounts = {m.split(":")[1]: m.split(":")[0] for m in merged["volumes"]}
        args = resolve(command, env, (INFRA / mounts["/etc/ticktape/ticktape.toml"]).read_text(), tmp_path)
        check_role(args, f"compose replicas {name}")
        from ticktape.commands.collect import _specs

        (spec,) = {(s.dialect.exchange_id, tuple(s.symbols), s.replica) for s in _specs(args)}
        replicas[name] = spec
    (a_spec, b_spec) = replicas.values()
    assert a_spec[:2] == b_spec[:2] and {a_spec[2], b_spec[2]} == {"a", "b"}, "same venue and symbols"
    assert set(services) - set(base) == {"collect-binance-spot-b"}


def test_compose_environment_and_config_resolve() -> None:
    for name, service in ticktape_services().items():
        env = compose_env(service)
        assert unknown_env(env) == [], name
        assert env["TICKTAPE_CONFIG"] == "/etc/ticktape/ticktape.toml"
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        host_config = INFRA / mounts[env["TICKTAPE_CONFIG"]]
        cfg = load_config(host_config, env, check_secrets=False)
        assert cfg.transport.kafka.bootstrap == "kafka:9092" and cfg.lake.path == "/data/lake"
        assert cfg.lake.path in mounts
        assert service["stop_grace_period"] == "60s"


def scrape_targets(prom: dict[str, Any], mounts: dict[str, str]) -> dict[str, list[str]]:
    """Targets per scrape job: static ones, and file-based ones read from the host directory that the
    Prometheus service mounts at the file's directory (``mounts``: container path -> host path)."""
    jobs: dict[str, list[str]] = {}
    for job in prom["scrape_configs"]:
        targets = [t for static in job.get("static_configs", []) for t in static["targets"]]
        for sd in job.get("file_sd_configs", []):
            for name in sd["files"]:
                host_dir = INFRA / mounts[str(Path(name).parent)]
                for group in yaml.safe_load((host_dir / Path(name).name).read_text()):
                    targets.extend(group["targets"])
        jobs[job["job_name"]] = targets
    return jobs


def check_targets(jobs: dict[str, list[str]], services: dict[str, Any]) -> None:
    """Every scraped host is a service of the compose set, at the port it listens on."""
    for job, targets in jobs.items():
        assert targets, f"{job}: no targets"
        for target in targets:
            host, port = target.rsplit(":", 1)
            if host == "localhost":
                continue
            assert host in services, f"{job}: no service {host}"
            assert int(port) == listen_port(host, services[host]), f"{job}: {target}"


def local_prometheus_config(prom: dict[str, Any], mounts: dict[str, str], tmp_path: Path) -> Path:
    """The compose Prometheus configuration with host paths, for promtool."""
    (rule_glob,) = prom["rule_files"]
    jobs = []
    for job in prom["scrape_configs"]:
        sds = [
            {"files": [str(INFRA / mounts[str(Path(n).parent)] / Path(n).name) for n in sd["files"]]}
            for sd in job.get("file_sd_configs", [])
        ]
        jobs.append(dict(job, file_sd_configs=sds) if sds else job)
    local = dict(prom, rule_files=[str(INFRA / "prometheus" / Path(rule_glob).name)], scrape_configs=jobs)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(local))
    return path


def promtool_check_config(path: Path) -> None:
    proc = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_config_scrapes_the_services_and_loads_the_rules(tmp_path: Path) -> None:
    prom = yaml.safe_load((INFRA / "compose" / "prometheus.yml").read_text())
    services = compose()["services"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    jobs = scrape_targets(prom, mounts)
    check_targets(jobs, services)
    collectors = {s for s in services if s.startswith("collect-")}
    assert {t.rsplit(":", 1)[0] for t in jobs["ticktape-collector"]} == collectors
    # promtool checks the configuration and the rule files it loads, with local paths
    rules = sorted((INFRA / "prometheus").glob("*.yml"))
    assert rules, "infra/prometheus/*.yml (the alert rules compose mounts) are missing"
    (rule_glob,) = prom["rule_files"]
    assert (INFRA / mounts[str(Path(rule_glob).parent)]).resolve() == (INFRA / "prometheus").resolve()
    promtool_check_config(local_prometheus_config(prom, mounts, tmp_path))


def test_compose_replicas_variant_scrapes_both_replicas(tmp_path: Path) -> None:
    """With compose.replicas.yaml, Prometheus scrapes every collector service, replica b included
    (the override replaces the collector targets' mount; compose merges volumes by container path)."""
    prom = yaml.safe_load((INFRA / "compose" / "prometheus.yml").read_text())
    base = compose()["services"]
    variant: dict[str, Any] = yaml.safe_load((INFRA / "compose.replicas.yaml").read_text())["services"]
    services = {**base, "collect-binance-spot-b": base["collect-binance-spot"]}
    mounts = {m.split(":")[1]: m.split(":")[0] for m in base["prometheus"]["volumes"]}
    mounts.update({m.split(":")[1]: m.split(":")[0] for m in variant["prometheus"]["volumes"]})
    jobs = scrape_targets(prom, mounts)
    check_targets(jobs, services)
    collectors = {s for s in services if s.startswith("collect-")}
    assert {t.rsplit(":", 1)[0] for t in jobs["ticktape-collector"]} == collectors
    assert "collect-binance-spot-b" in variant["prometheus"]["depends_on"]
    promtool_check_config(local_prometheus_config(prom, mounts, tmp_path))


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    mounted = {m.split(":")[1]: INFRA / m.split(":")[0] for m in grafana["volumes"] if m.startswith(".")}
    provisioning = mounted["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ticktape.yml").read_text())["providers"]
    dashboards = sorted(mounted[provider["options"]["path"]].glob("*.json"))
    assert dashboards, "no dashboards where the provider loads them"
    (datasource,) = [
        ds
        for f in sorted((provisioning / "datasources").glob("*.yml"))
        for ds in yaml.safe_load(f.read_text())["datasources"]
    ]
    url = re.sub(
        r"\$\{(\w+):-([^}]*)\}",
        lambda m: grafana["environment"].get(m.group(1), m.group(2)),
        datasource["url"],
    )
    host, port = url.removeprefix("http://").split(":")
    assert host == "prometheus" and int(port) == 9090, url
    for dashboard in dashboards:
        text = dashboard.read_text()
        uids = set(re.findall(r'"datasource"\s*:\s*\{[^}]*"uid"\s*:\s*"([^"]+)"', text))
        assert datasource["uid"] in uids, f"{dashboard.name}: does not query the provisioned data source"
        assert uids <= {datasource["uid"], "-- Grafana --", "grafana"}, f"{dashboard.name}: {uids}"


# ---------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck() -> None:
    ins = dockerfile_instructions()
    args = {
        rest.split("=", 1)[0]: rest.split("=", 1)[1] for word, rest in ins if word == "ARG" and "=" in rest
    }
    stages = [rest for word, rest in ins if word == "FROM"]
    assert len(stages) >= 2, "multi-stage"
    for stage in stages:
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], stage.split()[0])
        assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim-\w+", image), image
    final = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    (user,) = [rest for word, rest in final if word == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (Kubernetes runAsNonRoot checks it)"
    for _, spec in pod_specs():
        if all(c["image"].startswith("ticktape:") for c in containers(spec)):
            assert spec["securityContext"]["runAsUser"] == int(uid)
    (health,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    copies = {
        rest.split()[-1]: rest.split()[-2] for word, rest in final if word == "COPY" and "--from" not in rest
    }
    script = re.search(r'"(/[^"]+)"\]', health).group(1)  # type: ignore[union-attr]
    assert copies[script] == "infra/healthcheck.py"
    (entrypoint,) = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert entrypoint == '["ticktape"]'
    env = " ".join(rest for word, rest in final if word == "ENV")
    port = re.search(r"TICKTAPE_SERVER_PORT=(\d+)", env).group(1)  # type: ignore[union-attr]
    assert [rest for word, rest in final if word == "EXPOSE"] == [port] and int(port) == SERVER_PORT
    assert ("STOPSIGNAL", "SIGTERM") in final


def test_dockerfile_copies_existing_files_allowed_by_its_dockerignore() -> None:
    ins = dockerfile_instructions()
    stage_names = [rest.split()[-1] for word, rest in ins if word == "FROM" and " AS " in rest.upper()]
    allowed = [
        line[1:].rstrip("/")
        for line in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copied: set[str] = set()
    for word, rest in ins:
        if word != "COPY":
            continue
        parts = rest.split()
        flags = [p for p in parts if p.startswith("--")]
        paths = [p for p in parts if not p.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            (source,) = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
            assert source in stage_names, f"COPY --from={source}: no such stage"
            continue
        for src in paths[:-1]:
            assert (ROOT / src).exists(), f"COPY {src}: missing from the repository"
            assert src.rstrip("/") in allowed, f"COPY {src}: excluded by infra/Dockerfile.dockerignore"
            copied.add(src.rstrip("/"))
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
        "include"
    ]
    assert {p.rstrip("*") for p in packages} <= copied, "every package of pyproject.toml goes into the image"
    assert {"pyproject.toml", "README.md"} <= copied


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: Any) -> None:
        pass


def run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    env = {"TICKTAPE_SERVER_PORT": str(port), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, str(INFRA / "healthcheck.py")], capture_output=True, text=True, env=env, timeout=30
    )


def test_container_healthcheck_against_a_real_server() -> None:
    port = free_port()
    assert run_healthcheck(port).returncode == 1  # nothing listening
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ok = run_healthcheck(port)
        assert ok.returncode == 0 and "healthy" in ok.stdout
        _Handler.status = 503
        bad = run_healthcheck(port)
        assert bad.returncode == 1 and "HTTP 503" in bad.stdout
    finally:
        _Handler.status = 200
        server.shutdown()
        server.server_close()


# -------------------------------------------------------------------------------------------- README


def test_operations_guide_explains_every_alert() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "<!-- deployment -->" in readme
    guide = readme.split("## Operations guide", 1)[1]
    alerts = [
        name
        for rules in sorted((INFRA / "prometheus").glob("*.yml"))
        for name in re.findall(r"- alert: (\w+)", rules.read_text())
    ]
    assert alerts, "no alert rules found in infra/prometheus"
    for alert in alerts:
        assert re.search(rf"^\| \*\*{alert}\*\* \((critical|warning)\) \| .+ \| .+ \|$", guide, re.M), (
            f"README operations guide: no row for {alert} (what it means, what to do)"
        )
    for section in ("## Architecture", "### Configuration reference", "### Canary procedure"):
        assert section in readme


# ------------------------------------------------------- the commands containers run, resolved for real


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def container_argv(command: list[str]) -> list[str]:
    """ticktape's arguments in a container command (``sh -c '...; exec ticktape ...'`` included)."""
    if command[:2] == ["sh", "-c"]:
        script = command[2].split("exec ticktape", 1)[1]
        return shlex.split(re.sub(r"\$\$?day", "2024-08-08", script))
    return command


def resolve(argv: list[str], env: dict[str, str], config_text: str, tmp_path: Path) -> argparse.Namespace:
    """Parses a container's command with the real CLI and resolves it as the container would."""
    from ticktape.cli import build_parser

    config = tmp_path / "ticktape.toml"
    config.write_text(config_text)
    env = {**env, "TICKTAPE_CONFIG": str(config)}
    args = build_parser().parse_args(argv)
    assert hasattr(args, "config_resolver"), f"`ticktape {argv[0]}` does not take --config"
    args.config_obj = args.config_resolver(args, env)
    return args


def check_role(args: argparse.Namespace, where: str) -> None:
    """What each role needs in order to start, given only what the deployment provides."""
    from ticktape.transport_args import transport_options

    role = args.command
    assert role in ROLES, f"{where}: {role} is not one of the image's roles"
    if role in ("collect", "sink"):
        assert args.transport == "kafka", where
        assert transport_options(args)["bootstrap"], where
    if role == "collect":
        assert args.exchange and args.symbols, where
        assert args.port == SERVER_PORT and args.host == "0.0.0.0", f"{where}: probes need the server"
    if role in ("sink", "compact", "sync", "validate"):
        assert str(args.lake) == "/data/lake", where
    if role == "serve":
        cfg = args.config_obj
        assert args.exchanges.split(",") == list(dict.fromkeys(c.exchange for c in cfg.collectors)), where
        assert args.port == SERVER_PORT and args.host == "0.0.0.0", f"{where}: probes need the server"
        assert transport_options(args)["bootstrap"], where
    if role == "sync":
        assert args.dest.startswith("s3://"), where
    if role == "validate":
        assert args.date == "2024-08-08", where
        assert str(args.out).startswith("/data/lake/"), f"{where}: results must land on the lake volume"


def test_every_compose_service_command_resolves(tmp_path: Path) -> None:
    for name, service in ticktape_services().items():
        env = {k: _interpolate(v) for k, v in compose_env(service).items()}
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        config_text = (INFRA / mounts["/etc/ticktape/ticktape.toml"]).read_text()
        command = service.get("entrypoint") or service["command"]
        args = resolve(container_argv(command), env, config_text, tmp_path)
        check_role(args, f"compose {name}")


def test_every_kubernetes_container_command_resolves(tmp_path: Path) -> None:
    roles = set()
    for name, spec in pod_specs():
        for c in containers(spec):
            if not c["image"].startswith("ticktape:"):
                continue
            env = {e["name"]: e.get("value", "from-a-secret") for e in c.get("env", [])}
            args = resolve(container_argv(c.get("args") or c["command"]), env, k8s_config_text(), tmp_path)
            check_role(args, f"k8s {name}/{c['name']}")
            roles.add(args.command)
    assert roles == set(ROLES), "every role of the image runs somewhere in the cluster"


def test_sync_metrics_reach_prometheus(tmp_path: Path) -> None:
    # the daily sync's text file is where the textfile exporter reads, on the same volume
    def textfile_dir(args: list[str]) -> str:
        (directory,) = [a.split("=", 1)[1] for a in args if a.startswith("--collector.textfile.directory=")]
        return directory

    services = compose()["services"]
    sync = services["sync"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in sync["volumes"]}
    args = resolve(
        ["sync"], compose_env(sync), (INFRA / mounts["/etc/ticktape/ticktape.toml"]).read_text(), tmp_path
    )
    exporter = services["sync-metrics"]
    assert str(Path(args.metrics_file).parent) == textfile_dir(exporter["command"])
    assert "lake:/data/lake:ro" in exporter["volumes"] and "lake:/data/lake" in sync["volumes"]
    prom = yaml.safe_load((INFRA / "compose" / "prometheus.yml").read_text())
    mounts = {m.split(":")[1]: m.split(":")[0] for m in services["prometheus"]["volumes"]}
    assert any("sync-metrics:9100" in targets for targets in scrape_targets(prom, mounts).values())
    (deployment,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "ticktape-sync-metrics"]
    pod = deployment["spec"]["template"]["spec"]
    args = resolve(["sync"], {}, k8s_config_text(), tmp_path)
    assert str(Path(args.metrics_file).parent) == textfile_dir(pod["containers"][0]["args"])
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"ticktape-lake"}
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
