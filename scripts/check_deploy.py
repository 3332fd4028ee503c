#!/usr/bin/env python3
"""The deployment checks of scripts/check-deploy (run inside its venv; see that script).

Each check records one line of the summary; any failure makes the exit status 1. Every check
can fail: where a check proves a negative (a bad value set is rejected, a breaking proto change
is caught), it also proves that the positive case passes.

    scripts/check_deploy.py --cache DIR [--gateway BIN | --no-browser]
    scripts/check_deploy.py --write-k8s      regenerate k8s/base from the chart
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "ringiflow"
K8S = ROOT / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
# The newest Kubernetes release kubernetes-validate ships schemas for.
KUBERNETES_VERSION = "1.37.0"
RELEASE = "ringiflow-ci"
NAMESPACE = "ringiflow"
# A fixed JWT secret for renders that are compared (the chart generates one otherwise).
TEST_JWT = "0123456789abcdef0123456789abcdef-ci-only"

COMPONENTS = ["gateway", "command-svc", "query-svc", "projector-svc"]
GRPC_COMPONENTS = ["command-svc", "query-svc", "projector-svc"]
# Settings whose value is an address that differs between compose and a cluster.
ADDRESS_SETTINGS = {"RINGIFLOW_COMMAND_URL", "RINGIFLOW_QUERY_URL", "RINGIFLOW_KAFKA_BROKERS"}
# Values that must never be set inline (env `value`), only from a Secret.
SECRET_SETTINGS = {"RINGIFLOW_JWT_SECRET", "RINGIFLOW_KAFKA_SASL_PASSWORD", "RINGIFLOW_DATABASE_PASSWORD"}
DATABASE_URL_SETTINGS = {"RINGIFLOW_EVENT_STORE_URL", "RINGIFLOW_READ_DATABASE_URL"}

RESULTS: list[tuple[str, bool, str]] = []


class Failed(Exception):
    """A check's finding (as opposed to a crash of the checker)."""


def expect(condition: Any, message: str) -> None:
    if not condition:
        raise Failed(message)


def run_check(name: str, check: Callable[[], str | None]) -> None:
    """Runs one check and records its outcome; a crash counts as a failure, with its trace."""
    started = time.monotonic()
    try:
        detail = check() or ""
        ok = True
    except Failed as failure:
        ok, detail = False, str(failure)
    except Exception:  # noqa: BLE001 - the summary must list every check, whatever happened
        ok, detail = False, traceback.format_exc()
    seconds = time.monotonic() - started
    RESULTS.append((name, ok, detail))
    status = "ok  " if ok else "FAIL"
    print(f"{status} {name} ({seconds:.1f}s){': ' + detail if detail and ok else ''}", flush=True)
    if not ok:
        for line in detail.rstrip().splitlines():
            print(f"       {line}", flush=True)


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, text=True, capture_output=True, **kwargs)


def tool(name: str) -> str:
    """A command installed in this venv (buf, hadolint, check-jsonschema)."""
    path = Path(sys.executable).parent / name
    expect(path.exists(), f"{name} is not installed in {path.parent} (run scripts/check-deploy)")
    return str(path)


# ---------------------------------------------------------------------------------------------
# Helm

def helm_module():
    import helm_python  # noqa: PLC0415 - only in the venv

    return helm_python


def workspace_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    section = text.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    match = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
    expect(match, "no version in [workspace.package] of Cargo.toml")
    return match.group(1)


def chart_metadata() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def value_sets() -> dict[str, dict[str, Any] | None]:
    """The default values (None) and every helm/ringiflow/ci/*-values.yaml."""
    sets: dict[str, dict[str, Any] | None] = {"default": None}
    for path in sorted((CHART / "ci").glob("*-values.yaml")):
        sets[path.name.removesuffix("-values.yaml")] = yaml.safe_load(path.read_text()) or {}
    return sets


def expected_kinds(name: str) -> dict[str, int]:
    """`# expect-kinds: Kind=N ...` lines of a ci values file: the objects it must render."""
    if name == "default":
        return {"Deployment": 4, "Service": 4, "PodDisruptionBudget": 4, "ConfigMap": 1,
                "Secret": 2, "ServiceAccount": 1, "Job": 1, "Pod": 1,
                "HorizontalPodAutoscaler": 0, "NetworkPolicy": 0, "ServiceMonitor": 0, "Ingress": 0}
    kinds: dict[str, int] = {}
    for line in (CHART / "ci" / f"{name}-values.yaml").read_text().splitlines():
        if line.startswith("# expect-kinds:"):
            for pair in line.split(":", 1)[1].split():
                kind, count = pair.split("=")
                kinds[kind] = int(count)
    expect(kinds, f"ci/{name}-values.yaml has no '# expect-kinds:' line")
    return kinds


def render(values: dict[str, Any] | None, release: str = RELEASE) -> list[dict[str, Any]]:
    """Helm's own engine renders the chart as `helm install` would (hooks and tests included)."""
    helm = helm_module()
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values, name=release, namespace=NAMESPACE, is_install=True)
    objects = []
    for template, text in sorted(manifests.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                document.setdefault("metadata", {}).setdefault("annotations", {})
                document["_template"] = template
                objects.append(document)
    return objects


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    clean = {k: v for k, v in obj.items() if k != "_template"}
    if clean.get("metadata", {}).get("annotations") == {}:
        clean = copy.deepcopy(clean)
        del clean["metadata"]["annotations"]
    return clean


def check_chart_metadata() -> str:
    meta = chart_metadata()
    version = workspace_version()
    expect(meta.get("apiVersion") == "v2", "Chart.yaml: apiVersion must be v2")
    expect(str(meta.get("appVersion")) == version,
           f"Chart.yaml appVersion {meta.get('appVersion')!r} is not the workspace version {version!r} (Cargo.toml)")
    expect(meta.get("kubeVersion"), "Chart.yaml: no kubeVersion")
    for name in ("values.yaml", "values.schema.json", "README.md", "templates/NOTES.txt", "templates/_helpers.tpl"):
        expect((CHART / name).is_file(), f"helm/ringiflow/{name} is missing")
    return f"appVersion {version} = workspace version"


def values_leaves(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every setting: leaves, plus free-form objects (taken as one setting)."""
    free_form = {"podSecurityContext", "securityContext", "resources"}
    paths = []
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in free_form:
            paths += values_leaves(value, path)
        else:
            paths.append(path)
    return paths


def documented_values() -> set[str]:
    """Dotted paths of the keys of values.yaml that carry a `# --` comment."""
    documented, stack, pending = set(), [], False
    for line in (CHART / "values.yaml").read_text().splitlines():
        if re.match(r"^\s*# -- ", line):
            pending = True
            continue
        if re.match(r"^\s*#", line):
            continue
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            depth = len(match.group(1)) // 2
            stack = stack[:depth] + [match.group(2)]
            if pending:
                documented.add(".".join(stack))
        pending = False
    return documented


def check_values_documented() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    leaves = values_leaves(values)
    undocumented = [p for p in leaves if p not in documented_values()]
    expect(not undocumented, f"values without a '# --' comment: {undocumented}")
    untyped = []
    for path in leaves:
        node = schema
        for key in path.split("."):
            node = node.get("properties", {}).get(key)
            if node is None:
                untyped.append(path)
                break
    expect(not untyped, f"values missing from values.schema.json: {untyped}")
    return f"{len(leaves)} settings, each commented and typed"


def values_descriptions() -> dict[str, str]:
    """The `# --` comment of each key of values.yaml, by dotted path."""
    descriptions, stack, pending = {}, [], None
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^\s*# -- (.*)$", line)
        if match:
            pending = [match.group(1)]
            continue
        match = re.match(r"^\s*# (.*)$", line)
        if match and pending is not None:
            pending.append(match.group(1))
            continue
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
        if match:
            stack = stack[:len(match.group(1)) // 2] + [match.group(2)]
            if pending:
                descriptions[".".join(stack)] = " ".join(pending)
        pending = None
    return descriptions


def values_table() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    descriptions = values_descriptions()
    rows = ["| key | default | description |", "|---|---|---|"]
    for path in values_leaves(values):
        node: Any = values
        for key in path.split("."):
            node = node[key]
        default = json.dumps(node, separators=(",", ":")) if not isinstance(node, str) else json.dumps(node)
        if len(default) > 40:
            default = "see values.yaml"
        text = descriptions[path].replace("|", "\\|")
        rows.append(f"| `{path}` | `{default}` | {text} |")
    return "\n".join(rows) + "\n"


TABLE_START, TABLE_END = "<!-- values table: scripts/check_deploy.py --write-docs -->", "<!-- end of values table -->"


def write_docs() -> None:
    readme = CHART / "README.md"
    text = readme.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    readme.write_text(text[:start] + "\n" + values_table() + text[end:])
    print(f"wrote the values table of {readme.relative_to(ROOT)}")


def check_values_table() -> str:
    text = (CHART / "README.md").read_text()
    expect(TABLE_START in text and TABLE_END in text, "helm/ringiflow/README.md has no values table markers")
    table = text[text.index(TABLE_START) + len(TABLE_START):text.index(TABLE_END)]
    expect(table == "\n" + values_table(), "the values table of helm/ringiflow/README.md is stale: run scripts/check_deploy.py --write-docs")
    return "README.md documents every value"


def check_lint(name: str, values: dict[str, Any] | None) -> Callable[[], str]:
    def lint() -> str:
        helm = helm_module()
        report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE,
                           kube_version=f"v{KUBERNETES_VERSION}")
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        expect(not report.get("errors") and not problems,
               f"helm lint: {report.get('errors')} {problems}")
        infos = [m["error"] for m in report.get("messages", [])]
        return f"{report['total_charts_linted']} chart, no warning" + (f" (info: {'; '.join(infos)})" if infos else "")
    return lint


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def check_workload_invariants(objects: list[dict[str, Any]], where: str, *, chart: bool) -> None:
    """What every RingiFlow workload must be, wherever it was rendered."""
    problems = []
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"}
    for obj in objects:
        label = f"{where}: {obj['kind']} {obj['metadata']['name']}"
        labels = obj["metadata"].get("labels", {})
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/part-of"):
            if key not in labels:
                problems.append(f"{label}: no label {key}")
        if chart and labels.get("app.kubernetes.io/managed-by") != "Helm":
            problems.append(f"{label}: no app.kubernetes.io/managed-by=Helm")
        for key, value in (obj.get("data") or {}).items() if obj["kind"] == "ConfigMap" else []:
            if key in SECRET_SETTINGS | DATABASE_URL_SETTINGS or key == "RINGIFLOW_ALLOW_DEV_JWT_SECRET":
                problems.append(f"{label}: {key} must not be in a ConfigMap")
        spec = pod_spec(obj)
        if spec is None:
            continue
        pod_security = spec.get("securityContext", {})
        if pod_security.get("runAsNonRoot") is not True:
            problems.append(f"{label}: pod securityContext.runAsNonRoot is not true")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{label}: pod seccompProfile is not RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{label}: automountServiceAccountToken is not false")
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            cname = f"{label} container {container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cname}: readOnlyRootFilesystem is not true")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cname}: allowPrivilegeEscalation is not false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{cname}: capabilities do not drop ALL")
            resources = container.get("resources", {})
            if not resources.get("requests") or "memory" not in resources.get("limits", {}):
                problems.append(f"{cname}: no resource requests or memory limit")
            env_names = set()
            for env in container.get("env", []):
                env_names.add(env["name"])
                if env["name"] == "RINGIFLOW_ALLOW_DEV_JWT_SECRET":
                    problems.append(f"{cname}: sets RINGIFLOW_ALLOW_DEV_JWT_SECRET")
                if env["name"] in SECRET_SETTINGS and "secretKeyRef" not in env.get("valueFrom", {}):
                    problems.append(f"{cname}: {env['name']} is not taken from a Secret")
                if env["name"] in DATABASE_URL_SETTINGS and "value" in env and "$(RINGIFLOW_DATABASE_PASSWORD)" not in env["value"]:
                    problems.append(f"{cname}: {env['name']} is inline instead of from a Secret")
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                if ref is not None:
                    env_names |= set(configmaps.get(ref, {}))
            if obj["kind"] == "Deployment":
                if not env_names & {"RINGIFLOW_JWT_SECRET", "RINGIFLOW_JWT_PUBLIC_KEY_FILE"}:
                    problems.append(f"{cname}: neither RINGIFLOW_JWT_SECRET nor RINGIFLOW_JWT_PUBLIC_KEY_FILE")
                component = labels.get("app.kubernetes.io/component")
                problems += probe_problems(cname, component, container)
        if obj["kind"] == "Deployment":
            selector = obj["spec"]["selector"]["matchLabels"]
            template_labels = obj["spec"]["template"]["metadata"]["labels"]
            if any(template_labels.get(k) != v for k, v in selector.items()):
                problems.append(f"{label}: selector {selector} does not match the pod labels")
            if chart:
                annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
                for key in ("checksum/config", "checksum/secret"):
                    if not re.fullmatch(r"[0-9a-f]{64}", annotations.get(key, "")):
                        problems.append(f"{label}: no {key} annotation")
    expect(not problems, "\n".join(problems))


def probe_problems(name: str, component: str | None, container: dict[str, Any]) -> list[str]:
    problems = []
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if component == "gateway":
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            if container.get(probe, {}).get("httpGet", {}).get("path") != path:
                problems.append(f"{name}: {probe} is not HTTP GET {path}")
    elif component in GRPC_COMPONENTS:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            grpc = container.get(probe, {}).get("grpc")
            if not grpc or grpc.get("port") not in ports.values():
                problems.append(f"{name}: {probe} is not the built-in grpc probe on the container's port")
    else:
        problems.append(f"{name}: unknown component {component!r}")
    return problems


def kubernetes_validate_all(objects: list[dict[str, Any]], where: str) -> int:
    import kubernetes_validate  # noqa: PLC0415

    problems = []
    for obj in objects:
        clean = strip(obj)
        name = f"{where}: {obj['kind']} {obj['metadata'].get('name')}"
        if clean["kind"] == "ServiceMonitor":
            problems += validate_service_monitor(clean, name)
            continue
        try:
            kubernetes_validate.validate(clean, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name}: {error.message} at {'/'.join(map(str, error.path))}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(f"{name}: no schema: {error}")
    expect(not problems, "\n".join(problems))
    return len(objects)


# prometheus-operator's CRD is not among kubernetes-validate's schemas: the fields the chart
# uses, as the CRD (monitoring.coreos.com/v1) defines them, strictly.
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {"type": "object", "properties": {"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "endpoints": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                                   "interval": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                                   "scrapeTimeout": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}}}},
            },
        },
    },
}


def validate_service_monitor(obj: dict[str, Any], name: str) -> list[str]:
    import jsonschema  # noqa: PLC0415

    validator = jsonschema.Draft7Validator(SERVICE_MONITOR_SCHEMA)
    return [f"{name}: {e.message} at {'/'.join(map(str, e.path))}" for e in validator.iter_errors(obj)]


def check_render(name: str, values: dict[str, Any] | None) -> Callable[[], str]:
    def check() -> str:
        objects = render(values)
        counts: dict[str, int] = {}
        for obj in objects:
            counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
        for kind, count in expected_kinds(name).items():
            expect(counts.get(kind, 0) == count, f"{kind}: {counts.get(kind, 0)} rendered, {count} expected ({counts})")
        check_workload_invariants(objects, name, chart=True)
        check_chart_semantics(objects, values or {})
        validated = kubernetes_validate_all(objects, name)
        return f"{validated} objects valid for Kubernetes {KUBERNETES_VERSION} (strict)"
    return check


def find(objects: list[dict[str, Any]], kind: str, component: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (
        component is None or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component)]


def check_chart_semantics(objects: list[dict[str, Any]], values: dict[str, Any]) -> None:
    """What the chart promises beyond well-formed objects."""
    config = find(objects, "ConfigMap")[0]["data"]
    jobs = find(objects, "Job")
    migration = values.get("migration", {}).get("enabled", True)
    if migration:
        expect(len(jobs) == 1, "no migration Job")
        job = jobs[0]
        hook = job["metadata"]["annotations"].get("helm.sh/hook", "")
        expect(set(hook.split(",")) == {"pre-install", "pre-upgrade"}, f"migration Job hook is {hook!r}")
        pod = job["spec"]["template"]["spec"]
        commands = [c["command"] for c in pod.get("initContainers", []) + pod["containers"]]
        expect(commands == [["command-svc", "migrate"], ["projector-svc", "migrate"]], f"migration commands {commands}")
        expect(config["RINGIFLOW_MIGRATE_ON_START"] == "false", "services migrate at start although the hook Job does")
        for secret in find(objects, "Secret"):
            if secret["metadata"]["name"].endswith("-migration"):
                expect(int(secret["metadata"]["annotations"].get("helm.sh/hook-weight", "0")) < 0,
                       "the migration hook Secret is not created before the Job")
    else:
        expect(not jobs, "a migration Job although migration.enabled is false")
        expect(config["RINGIFLOW_MIGRATE_ON_START"] == "true", "nobody migrates: migration off and MIGRATE_ON_START false")
    for hpa in find(objects, "HorizontalPodAutoscaler"):
        expect(not hpa["spec"]["scaleTargetRef"]["name"].endswith("projector-svc"),
               "an autoscaler for the projector (replicas beyond the partitions idle)")
    for deployment in find(objects, "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        autoscaled = any(h["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
                         for h in find(objects, "HorizontalPodAutoscaler"))
        expect(("replicas" in deployment["spec"]) != autoscaled,
               f"{component}: replicas must be set exactly when no HPA scales it")
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p for p in find(objects, "NetworkPolicy")}
    if policies:
        def peers(component: str) -> list[str]:
            rules = policies[component]["spec"].get("ingress", [])
            grpc_rules = [r for r in rules if any(p["port"] != "metrics" for p in r.get("ports", []))]
            return [f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component", "?")
                    for r in grpc_rules for f in r.get("from", [{"": "anyone"}])]
        expect(set(peers("query-svc")) <= {"gateway"} | {"?"}, f"query-svc reachable from {peers('query-svc')}")
        expect({"gateway", "projector-svc"} <= set(peers("command-svc")), f"command-svc peers {peers('command-svc')}")
        expect("gateway" not in peers("projector-svc"), "the gateway may reach the projector")
        for component in GRPC_COMPONENTS:
            for rule in policies[component]["spec"].get("ingress", []):
                expect(rule.get("from"), f"{component}: an ingress rule without `from` admits anyone")
    for obj in objects:
        spec = pod_spec(obj) or {}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            mounts = [m["mountPath"].rstrip("/") + "/" for m in container.get("volumeMounts", [])]
            for env in container.get("env", []):
                for path in re.findall(r"sslrootcert=([^&]+)", env.get("value", "")):
                    expect(any(path.startswith(m) for m in mounts),
                           f"{obj['metadata']['name']}/{container['name']}: {env['name']} reads {path}, which no volume provides")
    jwt = values.get("auth", {}).get("jwt", {})
    if jwt.get("publicKey", {}).get("existingSecret") and not (jwt.get("secret") or jwt.get("existingSecret")):
        for secret in find(objects, "Secret"):
            expect("jwt-secret" not in secret.get("data", {}), "an HS256 secret generated although only a public key is configured")
        for deployment in find(objects, "Deployment"):
            env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])}
            expect("RINGIFLOW_JWT_SECRET" not in env, f"{deployment['metadata']['name']} gets an HS256 secret in public-key mode")
        expect(config.get("RINGIFLOW_JWT_PUBLIC_KEY_FILE", "").endswith("/" + jwt["publicKey"].get("key", "public.pem")),
               "RINGIFLOW_JWT_PUBLIC_KEY_FILE does not name the mounted key")
    for pod in find(objects, "Pod"):
        expect(pod["metadata"]["annotations"].get("helm.sh/hook") == "test", "a Pod that is not a helm test")
        script = " ".join(pod["spec"]["containers"][0]["command"])
        expect("/readyz" in script, "the helm test does not ask /readyz")


def check_validators_catch_mistakes() -> str:
    """The validators this script relies on really refuse what they should, as configured here:
    a misspelt Deployment field, a wrong type, an unknown compose key."""
    import kubernetes_validate  # noqa: PLC0415

    deployment = strip(find(render({"auth": {"jwt": {"secret": TEST_JWT}}}), "Deployment")[0])
    misspelt = copy.deepcopy(deployment)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    for name, broken in (("a misspelt field", misspelt), ("a string port", wrong_type)):
        try:
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError:
            continue
        raise Failed(f"kubernetes-validate accepted {name}")
    with tempfile.TemporaryDirectory(prefix="ringiflow-compose-") as tmp:
        document = compose()
        document["services"]["gateway"]["readonly"] = True
        broken_compose = Path(tmp) / "docker-compose.yml"
        broken_compose.write_text(yaml.safe_dump(document))
        result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken_compose)])
        expect(result.returncode != 0, "the compose-spec schema accepted an unknown service key")
    return "kubernetes-validate --strict refuses a misspelt field and a wrong type; the compose schema an unknown key"


def check_checksums_roll_pods() -> str:
    base = {"auth": {"jwt": {"secret": TEST_JWT}}}
    changed_config = {"auth": {"jwt": {"secret": TEST_JWT}}, "config": {"logLevel": "debug"}}
    changed_secret = {"auth": {"jwt": {"secret": TEST_JWT + "-rotated"}}}

    def checksums(values: dict[str, Any]) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]
                for d in find(render(values), "Deployment")}

    before, config, secret = checksums(base), checksums(changed_config), checksums(changed_secret)
    expect(before == checksums(base), "the same values render different checksums")
    for name in before:
        expect(before[name]["checksum/config"] != config[name]["checksum/config"], f"{name}: a settings change does not roll the pods")
        expect(before[name]["checksum/secret"] == config[name]["checksum/secret"], f"{name}: a settings change alters the secret checksum")
        expect(before[name]["checksum/secret"] != secret[name]["checksum/secret"], f"{name}: a new JWT secret does not roll the pods")
    return "a settings or secret change changes the pods' checksum annotations"


def check_schema_rejects() -> str:
    helm = helm_module()
    invalid = sorted((CHART / "ci" / "invalid").glob("*.yaml"))
    expect(len(invalid) >= 3, "fewer than 3 invalid value sets in helm/ringiflow/ci/invalid")
    rejected = []
    with helm.Chart.load(str(CHART)) as chart:
        chart.validate_schema(None)
        for name, values in value_sets().items():
            chart.validate_schema(values)  # the good sets pass, so a rejection means something
        for path in invalid:
            text = path.read_text()
            match = re.search(r"^# expect-error: (.+)$", text, re.M)
            expect(match, f"{path.name}: no '# expect-error:' line")
            values = yaml.safe_load(text)
            try:
                chart.validate_schema(values)
            except helm.HelmValuesError as error:
                expect(match.group(1) in str(error), f"{path.name}: rejected, but not for {match.group(1)!r}: {error}")
            else:
                raise Failed(f"{path.name}: values.schema.json accepts it")
            try:
                chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
            except helm.HelmError:
                pass
            else:
                raise Failed(f"{path.name}: rendering accepts it (the schema is not enforced)")
            rejected.append(path.stem)
    return f"rejected: {', '.join(rejected)}"


# ---------------------------------------------------------------------------------------------
# k8s/: the base is generated from the chart, the overlays are written by hand; rendered here
# with the parts of kustomize they use.

K8S_BASE_VALUES = {
    "fullnameOverride": "ringiflow",
    # One Secret, created by the operator (or an overlay's secretGenerator).
    "auth": {"jwt": {"existingSecret": "ringiflow-secrets", "existingSecretKey": "jwt-secret"}},
    "database": {"existingSecret": "ringiflow-secrets", "host": "",
                 "existingSecretEventStoreUrlKey": "event-store-url",
                 "existingSecretReadUrlKey": "read-database-url"},
    "gateway": {"autoscaling": {"enabled": True}},
    "commandSvc": {"autoscaling": {"enabled": True}},
    "querySvc": {"autoscaling": {"enabled": True}},
    "networkPolicy": {"enabled": True},
    "tests": {"enabled": False},
}
STANDARD_LABELS = {"app.kubernetes.io/name": "ringiflow", "app.kubernetes.io/instance": "ringiflow",
                   "app.kubernetes.io/part-of": "ringiflow"}
K8S_HEADER = ("# Generated from helm/ringiflow by `scripts/check_deploy.py --write-k8s` (the chart's\n"
              "# defaults plus K8S_BASE_VALUES there); edit the chart, then regenerate.\n")


def k8s_base_files() -> dict[str, str]:
    objects = render(K8S_BASE_VALUES, release="ringiflow")
    files: dict[str, list[dict[str, Any]]] = {}
    config_env = ""
    for obj in objects:
        obj = strip(obj)
        meta = obj["metadata"]
        meta.pop("namespace", None)
        labels = meta.get("labels", {})
        labels.pop("helm.sh/chart", None)
        labels.pop("app.kubernetes.io/managed-by", None)
        for template in (obj.get("spec", {}).get("template", {}).get("metadata", {}),):
            template.get("labels", {}).pop("helm.sh/chart", None)
            template.get("labels", {}).pop("app.kubernetes.io/managed-by", None)
            annotations = template.get("annotations", {})
            for key in [k for k in annotations if k.startswith("checksum/")]:
                del annotations[key]
            if template.get("annotations") == {}:
                del template["annotations"]
        component = labels.get("app.kubernetes.io/component", "")
        if obj["kind"] == "ConfigMap":
            config_env = "".join(f"{k}={v}\n" for k, v in obj["data"].items())
            continue
        if obj["kind"] == "Job":
            # Applied with the rest; the services wait for it by failing their schema check
            # (they restart until the schema is there). Deleted an hour after it finished, so
            # the next `kubectl apply` creates it anew for the next release.
            for key in [k for k in meta.get("annotations", {}) if k.startswith("helm.sh/")]:
                del meta["annotations"][key]
            if meta.get("annotations") == {}:
                del meta["annotations"]
        file = {"": "serviceaccount.yaml", "migration": "migration-job.yaml"}.get(component, f"{component}.yaml")
        files.setdefault(file, []).append(obj)
    out = {name: K8S_HEADER + yaml.safe_dump_all(docs, sort_keys=False, width=100)
           for name, docs in sorted(files.items())}
    out["config.env"] = ("# Generated from helm/ringiflow (the ConfigMap of its default values) by\n"
                         "# `scripts/check_deploy.py --write-k8s`; overlays change values with configMapGenerator.\n"
                         + config_env)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": sorted(files),
        # Named with a hash of its contents: a settings change rolls the pods.
        "configMapGenerator": [{"name": "ringiflow-config", "envs": ["config.env"],
                                "options": {"labels": STANDARD_LABELS}}],
    }
    out["kustomization.yaml"] = K8S_HEADER + yaml.safe_dump(kustomization, sort_keys=False)
    return out


def write_k8s() -> None:
    base = K8S / "base"
    base.mkdir(parents=True, exist_ok=True)
    wanted = k8s_base_files()
    for stale in base.iterdir():
        if stale.name not in wanted:
            stale.unlink()
    for name, text in wanted.items():
        (base / name).write_text(text)
    print(f"wrote {len(wanted)} files to {base.relative_to(ROOT)}")


def check_k8s_base_in_sync() -> str:
    wanted = k8s_base_files()
    base = K8S / "base"
    actual = {p.name: p.read_text() for p in base.iterdir()} if base.is_dir() else {}
    stale = sorted(n for n in set(wanted) | set(actual) if wanted.get(n) != actual.get(n))
    expect(not stale, f"k8s/base differs from the chart in {stale}: run scripts/check_deploy.py --write-k8s")
    return f"{len(wanted)} files match the chart"


def read_env_file(path: Path) -> dict[str, str]:
    data = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            data[key] = value
    return data


def merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge as kustomize applies it to these manifests: maps merge, lists of named
    objects (containers, env, ports) merge by name, other lists are replaced."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            merged[key] = merge_patch(target[key], value) if key in target else copy.deepcopy(value)
        return merged
    if (isinstance(target, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in target + patch)):
        merged = [copy.deepcopy(i) for i in target]
        for item in patch:
            for index, existing in enumerate(merged):
                if existing["name"] == item["name"]:
                    merged[index] = merge_patch(existing, item)
                    break
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "namespace", "patches", "images", "replicas",
                      "configMapGenerator", "secretGenerator", "labels", "commonAnnotations"}


def kustomize(directory: Path, notes: list[str]) -> list[dict[str, Any]]:
    """Renders a kustomization the way kustomize does for the features k8s/ uses; refuses any
    other feature (so a new one cannot go unchecked)."""
    path = directory / "kustomization.yaml"
    expect(path.is_file(), f"{directory.relative_to(ROOT)}: no kustomization.yaml")
    k = yaml.safe_load(path.read_text())
    where = path.relative_to(ROOT)
    unknown = set(k) - KUSTOMIZATION_KEYS
    expect(not unknown, f"{where}: fields this check cannot render: {sorted(unknown)}")
    expect(k.get("kind") == "Kustomization", f"{where}: kind is not Kustomization")
    objects: list[dict[str, Any]] = []
    for resource in k.get("resources", []):
        target = (directory / resource).resolve()
        expect(target.exists(), f"{where}: resource {resource} does not exist")
        if target.is_dir():
            objects += kustomize(target, notes)
        else:
            objects += [d for d in yaml.safe_load_all(target.read_text()) if d]
    generated: dict[tuple[str, str], str] = {}

    def generate(kind: str, spec: dict[str, Any]) -> None:
        data: dict[str, str] = {}
        for env in spec.get("envs", []):
            env_path = directory / env
            if not env_path.exists():
                example = env_path.with_name(env_path.name + ".example")
                expect(example.exists(), f"{where}: {env} does not exist (nor {env}.example)")
                notes.append(f"{where}: {env} is created by the operator; checked with {example.name}")
                env_path = example
            data.update(read_env_file(env_path))
        for literal in spec.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        name = spec["name"]
        behavior = spec.get("behavior", "create")
        existing = next((o for o in objects if o["kind"] == kind and o["metadata"].get("_generated") == name), None)
        if behavior == "create":
            expect(existing is None, f"{where}: {kind} {name} generated twice")
            obj = {"apiVersion": "v1", "kind": kind, "data": data,
                   "metadata": {"name": name, "_generated": name,
                                "labels": dict(spec.get("options", {}).get("labels", {}))}}
            objects.append(obj)
        else:
            expect(existing is not None, f"{where}: {kind} {name} to {behavior} does not exist")
            existing["data"] = data if behavior == "replace" else {**existing["data"], **data}

    for spec in k.get("configMapGenerator", []):
        generate("ConfigMap", spec)
    for spec in k.get("secretGenerator", []):
        generate("Secret", spec)
    if "namespace" in k:
        for obj in objects:
            obj["metadata"]["namespace"] = k["namespace"]
    for patch in k.get("patches", []):
        expect(set(patch) == {"path"}, f"{where}: only file patches are rendered here: {patch}")
        patch_path = directory / patch["path"]
        expect(patch_path.is_file(), f"{where}: patch {patch['path']} does not exist")
        for doc in yaml.safe_load_all(patch_path.read_text()):
            matches = [i for i, o in enumerate(objects)
                       if o["kind"] == doc["kind"] and o["metadata"]["name"] == doc["metadata"]["name"]]
            expect(len(matches) == 1, f"{where}: patch {patch['path']} matches no {doc['kind']} {doc['metadata']['name']}")
            objects[matches[0]] = merge_patch(objects[matches[0]], doc)
    for replica in k.get("replicas", []):
        matches = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == replica["name"]]
        expect(matches, f"{where}: replicas for unknown Deployment {replica['name']}")
        matches[0]["spec"]["replicas"] = replica["count"]
    for image in k.get("images", []):
        for obj in objects:
            spec = pod_spec(obj)
            for container in (spec or {}).get("initContainers", []) + (spec or {}).get("containers", []):
                repo, _, tag = container["image"].partition(":")
                if repo == image["name"]:
                    container["image"] = f"{image.get('newName', repo)}:{image.get('newTag', tag)}"
    for obj in objects:
        obj["metadata"].setdefault("labels", {})
        for label in k.get("labels", []):
            obj["metadata"]["labels"].update(label["pairs"])
        if "commonAnnotations" in k:
            obj["metadata"].setdefault("annotations", {}).update(k["commonAnnotations"])
    return objects


def finish_generated(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gives generated ConfigMaps and Secrets their content-hash names, as kustomize does at
    the top level, and points every reference at them."""
    renames = {}
    for obj in objects:
        original = obj["metadata"].pop("_generated", None)
        if original:
            digest = hashlib.sha256(json.dumps(obj["data"], sort_keys=True).encode()).hexdigest()[:10]
            renames[(obj["kind"], original)] = obj["metadata"]["name"] = f"{original}-{digest}"
            if obj["kind"] == "Secret":
                obj["type"] = "Opaque"
                obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in obj["data"].items()}
    for obj in objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef")
                if ref and ("ConfigMap", ref["name"]) in renames:
                    ref["name"] = renames[("ConfigMap", ref["name"])]
            for env in container.get("env", []):
                for key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                    ref = env.get("valueFrom", {}).get(key)
                    if ref and (kind, ref["name"]) in renames:
                        ref["name"] = renames[(kind, ref["name"])]
    return objects


def check_k8s_files() -> str:
    """Every manifest file under k8s/, file by file, strictly."""
    import kubernetes_validate  # noqa: PLC0415

    checked, problems = 0, []
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            where = f"{path.relative_to(ROOT)}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
                checked += 1
            except kubernetes_validate.ValidationError as error:
                # An overlay's patch is a fragment: it must still use only real fields, which
                # strict validation of the fragment shows; missing required fields are fine
                # there (the rendered overlay is validated whole by the next check).
                if "patches" in path.parts and error.validator == "required":
                    checked += 1
                    continue
                problems.append(f"{where}: {error.message} at {'/'.join(map(str, error.path))}")
            except kubernetes_validate.SchemaNotFoundError as error:
                problems.append(f"{where}: {error}")
    expect(checked, "no manifest under k8s/")
    expect(not problems, "\n".join(problems))
    return f"{checked} objects in k8s/ valid (strict)"


def check_kustomizations() -> str:
    rendered = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        notes: list[str] = []
        objects = finish_generated(kustomize(path.parent, notes))
        where = str(path.parent.relative_to(ROOT))
        expect(len(find(objects, "Deployment")) == 4, f"{where}: {len(find(objects, 'Deployment'))} Deployments, 4 expected")
        # Every reference resolves inside the rendering or names the operator's Secret.
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        for obj in objects:
            spec = pod_spec(obj) or {}
            for container in spec.get("initContainers", []) + spec.get("containers", []):
                for source in container.get("envFrom", []):
                    ref = source.get("configMapRef", {}).get("name")
                    expect(ref is None or ("ConfigMap", ref) in names, f"{where}: {obj['metadata']['name']} reads missing ConfigMap {ref}")
        check_workload_invariants(objects, where, chart=False)
        kubernetes_validate_all(objects, where)
        rendered.append(f"{where} ({len(objects)} objects)" + (f" [{'; '.join(notes)}]" if notes else ""))
    expect(rendered, "no kustomization under k8s/")
    return "rendered and valid: " + ", ".join(rendered)


# ---------------------------------------------------------------------------------------------
# docker-compose.yml

def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the `<<` merge keys


def check_compose_schema() -> str:
    result = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    expect(result.returncode == 0, result.stdout + result.stderr)
    return "compose-spec schema"


def check_compose_semantics() -> str:
    services = compose()["services"]
    wanted = {"postgres", "kafka", "migrate-event-store", "migrate-read-model", *COMPONENTS}
    expect(set(services) == wanted, f"services {sorted(services)}, expected {sorted(wanted)}")
    expect(services["kafka"]["image"].startswith("apache/kafka:"), "Kafka is not the official apache/kafka image")
    kafka_env = services["kafka"]["environment"]
    expect("controller" in kafka_env.get("KAFKA_PROCESS_ROLES", ""), "Kafka does not run in KRaft mode")
    expect(not any("ZOOKEEPER" in k for k in kafka_env), "Kafka configured for ZooKeeper")
    postgres = services["postgres"]
    expect(postgres["environment"]["POSTGRES_DB"] == "ringiflow_events", "PostgreSQL does not create the event store")
    init = compose()["configs"]["create-read-database"]["content"]
    expect("CREATE DATABASE ringiflow_read" in init, "PostgreSQL does not create the read database")
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            expect(dependency in services, f"{name} depends on unknown {dependency}")
            condition = condition["condition"]
            if condition == "service_healthy":
                expect("healthcheck" in services[dependency], f"{name} waits for {dependency} to be healthy, which has no healthcheck")
            elif condition == "service_completed_successfully":
                expect(dependency.startswith("migrate-"), f"{name} waits for {dependency} to complete")
            else:
                raise Failed(f"{name}: depends_on {dependency} with condition {condition}")
        env = service.get("environment") or {}
        expect("RINGIFLOW_ALLOW_DEV_JWT_SECRET" not in env, f"{name} allows the development JWT secret")
        if name in COMPONENTS or name.startswith("migrate-"):
            expect(str(env.get("RINGIFLOW_JWT_SECRET", "")).startswith("${RINGIFLOW_JWT_SECRET:?"),
                   f"{name}: RINGIFLOW_JWT_SECRET is not required from the environment")
    for name in COMPONENTS:
        expect("healthcheck" in services[name], f"{name} has no healthcheck")
        expect(services[name].get("read_only") is True and "ALL" in services[name].get("cap_drop", []),
               f"{name} is not read-only without capabilities")
    return "services, health checks and dependencies"


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def check_compose_matches_chart() -> str:
    services = compose()["services"]
    objects = render({"auth": {"jwt": {"secret": TEST_JWT}}})
    chart_config = find(objects, "ConfigMap")[0]["data"]
    meta, values = chart_metadata(), yaml.safe_load((CHART / "values.yaml").read_text())
    image = f"{values['image']['repository']}:{meta['appVersion']}"
    compared = 0
    for name in COMPONENTS + ["migrate-event-store", "migrate-read-model"]:
        expect(services[name]["image"] == image, f"{name}: image {services[name]['image']}, the chart's is {image}")
    for component in COMPONENTS:
        deployment = find(objects, "Deployment", component)[0]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        chart_env = {e["name"]: e.get("value") for e in container.get("env", [])}
        chart_env = {**chart_config, **chart_env}
        service_env = compose_env(services[component])
        missing, extra = set(chart_env) - set(service_env), set(service_env) - set(chart_env)
        expect(not missing and not extra,
               f"{component}: settings only in the chart {sorted(missing)}, only in compose {sorted(extra)}")
        for key, value in chart_env.items():
            if value is None or key in DATABASE_URL_SETTINGS or key in SECRET_SETTINGS:
                continue  # from a Secret in the chart; compose's are its own
            if key in ADDRESS_SETTINGS:
                ports = lambda text: re.findall(r":(\d+)", text)  # noqa: E731
                expect(ports(value) == ports(service_env[key]), f"{component}: {key} port {service_env[key]} vs chart {value}")
            else:
                expect(service_env[key] == value, f"{component}: {key}={service_env[key]!r}, the chart has {value!r}")
            compared += 1
        expect(services[component]["command"] == container["command"],
               f"{component}: command {services[component]['command']} vs chart {container['command']}")
        port = container["ports"][0]["containerPort"]
        expect(any(h.endswith(f":{port}") for h in [service_env.get("RINGIFLOW_LISTEN_ADDR", ""), service_env.get("RINGIFLOW_HEALTH_ADDR", "")]),
               f"{component}: compose listens elsewhere than the chart's port {port}")
    gateway_port = values["gateway"]["service"]["port"]
    expect(any(str(p).endswith(f":{gateway_port}") for p in services["gateway"].get("ports", [])),
           f"compose does not publish the gateway on the chart's port {gateway_port}")
    job = find(objects, "Job")[0]["spec"]["template"]["spec"]
    for step, container in zip(["migrate-event-store", "migrate-read-model"], job["initContainers"] + job["containers"]):
        expect(services[step]["command"] == container["command"], f"{step}: {services[step]['command']} vs chart {container['command']}")
        wanted_urls = {e["name"] for e in container["env"]} & DATABASE_URL_SETTINGS
        got_urls = set(compose_env(services[step])) & DATABASE_URL_SETTINGS
        expect(wanted_urls == got_urls, f"{step}: database settings {got_urls} vs chart {wanted_urls}")
    return f"same image {image}, ports, commands and {compared} setting values as the chart"


# ---------------------------------------------------------------------------------------------
# buf

def git(*args: str) -> subprocess.CompletedProcess[str]:
    return run(["git", "-C", str(ROOT), *args])


def breaking_base() -> tuple[str | None, str]:
    """The commit whose contract this one must stay compatible with: on main, its previous
    commit (first parent); on another branch, the commit of main it branched from (main's tip
    may have moved on with contract changes the branch has not merged yet)."""
    branch = git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    if branch != "main" and git("rev-parse", "--verify", "--quiet", "main^{commit}").returncode == 0:
        fork = git("merge-base", "HEAD", "main").stdout.strip()
        expect(fork, "this branch shares no history with main")
        return fork, "main where this branch left it"
    if git("rev-parse", "--verify", "--quiet", "HEAD^1^{commit}").returncode == 0:
        return "HEAD^1", "the previous commit of main"
    if git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        raise Failed("shallow clone: the previous commit is missing (git fetch --unshallow)")
    return None, "no previous commit"


def check_buf_lint() -> str:
    result = run([tool("buf"), "lint"], cwd=ROOT)
    expect(result.returncode == 0, result.stdout + result.stderr)
    return "proto/ lints clean"


def check_buf_breaking(cache: Path) -> Callable[[], str]:
    def check() -> str:
        base, described = breaking_base()
        if base is None:
            return "nothing to compare: this is the first commit"
        with tempfile.TemporaryDirectory(prefix="ringiflow-buf-") as tmp:
            archive = git("archive", "--format=tar", base, "proto")
            if archive.returncode != 0:
                return f"{described} has no proto/: nothing to compare"
            subprocess.run(["git", "-C", str(ROOT), "archive", base, "proto"], check=True,
                           stdout=open(Path(tmp) / "base.tar", "wb"))
            subprocess.run(["tar", "-xf", "base.tar"], cwd=tmp, check=True)
            against = Path(tmp) / "proto"
            result = run([tool("buf"), "breaking", "proto", "--against", str(against)], cwd=ROOT)
            expect(result.returncode == 0, f"against {described}:\n{result.stdout}{result.stderr}")
            # The check can fail: a contract without one of today's fields is caught.
            broken = Path(tmp) / "broken"
            shutil.copytree(ROOT / "proto" / "ringiflow", broken / "ringiflow")
            events = broken / "ringiflow" / "workflow" / "v1" / "common.proto"
            text = events.read_text()
            mutated = re.sub(r"^(\s*)(\w[\w.]*\s+\w+\s*=\s*\d+\s*;)", r"\1// removed: \2", text, count=1, flags=re.M)
            expect(mutated != text, "could not remove a field for the self-test")
            events.write_text(mutated)
            caught = run([tool("buf"), "breaking", str(broken), "--against", str(ROOT / "proto")], cwd=ROOT)
            expect(caught.returncode != 0, "buf breaking did not catch a removed field")
        head = git("rev-parse", "--short", "HEAD").stdout.strip()
        return f"{head} is compatible with {described} ({git('rev-parse', '--short', base).stdout.strip()}); a removed field is caught"
    return check


# ---------------------------------------------------------------------------------------------
# Dockerfile

def check_hadolint() -> str:
    dockerfile = ROOT / "Dockerfile"
    result = run([tool("hadolint"), "--no-color", str(dockerfile)])
    expect(result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr)
    lines = dockerfile.read_text().splitlines()
    ignores = 0
    for number, line in enumerate(lines):
        match = re.match(r"#\s*hadolint ignore=([\w,]+)", line)
        if not match:
            continue
        ignores += 1
        before = "\n".join(l for l in lines[max(0, number - 6):number] if l.startswith("#"))
        for rule in match.group(1).split(","):
            expect(rule in before and "ignored" in before,
                   f"Dockerfile:{number + 1}: `hadolint ignore={rule}` without a comment above saying why {rule} is ignored")
    return f"no finding; {ignores} ignore(s), each explained"


def check_dockerfile() -> str:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)
    runtime = stages[-1]
    expect("cargo chef cook" in text, "no cargo-chef dependency layer")
    for label in ("title", "description", "version", "revision", "licenses"):
        expect(f"org.opencontainers.image.{label}" in runtime, f"no OCI label org.opencontainers.image.{label}")
    for package in ("ca-certificates", "tzdata"):
        expect(package in runtime, f"the runtime image lacks {package}")
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    expect(user and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0",
           f"the runtime image does not end as a numeric non-root USER ({user})")
    for binary in COMPONENTS:
        expect(binary in text, f"the image does not build {binary}")
    ignore = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", "target", ".local"):
        expect(entry in ignore, f".dockerignore does not exclude {entry}")
    return "multi-stage, cargo-chef, OCI labels, non-root, CA certificates and tzdata"


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves `path` out of the build context: the last matching pattern wins,
    `!` re-includes, a pattern matching a directory excludes what is inside it."""
    import fnmatch  # noqa: PLC0415

    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates
               if c.count("/") == p.count("/") or "**" in c):
            excluded = not negate
    return excluded


def check_build_context() -> str:
    """What `docker build .` sends (the repository less .dockerignore) is enough to build:
    every workspace member's manifest and sources, and every file a crate embeds."""
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    files = git("ls-files").stdout.split()
    kept = [f for f in files if not dockerignore_excludes(f, patterns)]
    for dropped in ("helm/ringiflow/Chart.yaml", ".git", "docker-compose.yml"):
        expect(dockerignore_excludes(dropped, patterns), f".dockerignore does not leave out {dropped}")
    with tempfile.TemporaryDirectory(prefix="ringiflow-context-") as tmp:
        for file in kept:
            target = Path(tmp) / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / file, target)
        result = run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1", "--no-deps"], cwd=tmp)
        expect(result.returncode == 0, f"cargo metadata fails in the build context:\n{result.stderr[-2000:]}")
        missing = []
        for source in [f for f in kept if f.endswith(".rs")]:
            text = (Path(tmp) / source).read_text()
            for included in re.findall(r'include_(?:bytes|str)!\(\s*"([^"]+)"\s*\)', text):
                if not (Path(tmp) / source).parent.joinpath(included).resolve().is_file():
                    missing.append(f"{source}: {included}")
        expect(not missing, f"files embedded by the code but left out of the build context: {missing}")
    return f"{len(kept)} of {len(files)} tracked files sent; the workspace resolves with --locked and every embedded file is there"


# ---------------------------------------------------------------------------------------------
# GraphiQL

GRAPHIQL = ROOT / "gateway" / "graphiql"


# ---------------------------------------------------------------------------------------------
# Prometheus alerts and the Grafana dashboard
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
SEVERITIES = {"critical", "warning"}


def alert_rules() -> dict[str, Any]:
    """alerts.yaml's PrometheusRule, after checking the shape the operator and promtool need."""
    rule = yaml.safe_load((PROMETHEUS / "alerts.yaml").read_text())
    expect(rule.get("apiVersion") == "monitoring.coreos.com/v1" and rule.get("kind") == "PrometheusRule",
           "alerts.yaml: not a monitoring.coreos.com/v1 PrometheusRule")
    expect(rule.get("metadata", {}).get("name"), "alerts.yaml: metadata.name missing")
    for group in rule["spec"]["groups"]:
        for entry in group["rules"]:
            name = entry.get("alert", "?")
            expect(entry.get("labels", {}).get("severity") in SEVERITIES,
                   f"alerts.yaml: {name}: labels.severity must be one of {sorted(SEVERITIES)}")
            for key in ("summary", "description"):
                expect(entry.get("annotations", {}).get(key), f"alerts.yaml: {name}: annotations.{key} missing")
    return rule


def check_alerts_promtool() -> str:
    """promtool checks the rules the PrometheusRule holds and runs alerts_test.yaml against them."""
    rule = alert_rules()
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
        shutil.copy(PROMETHEUS / "alerts_test.yaml", directory)
        for args in (["check", "rules", "rules.yaml"], ["test", "rules", "alerts_test.yaml"]):
            result = run(["promtool", *args], cwd=directory)
            expect(result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}")
    alerts = [entry["alert"] for group in rule["spec"]["groups"] for entry in group["rules"]]
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yaml").read_text()))
    expect(not set(alerts) - tested, f"alerts without a unit test: {sorted(set(alerts) - tested)}")
    return f"{len(alerts)} alerts, each unit-tested"


def recorded_metrics() -> set[str]:
    """The metric names the services' sources record (string literals `"ringiflow_..."`)."""
    names: set[str] = set()
    for source in ROOT.glob("**/src/**/*.rs"):
        if "target" in source.parts:
            continue
        names.update(re.findall(r'"(ringiflow_[a-z0-9_]+)"', source.read_text()))
    return names


def queried_metrics(expression: str) -> set[str]:
    """Metric names in a PromQL expression, without the series suffixes a histogram adds."""
    return {re.sub(r"_(bucket|sum|count)$", "", name) for name in re.findall(r"\bringiflow_[a-z0-9_]+", expression)}


def check_queries_name_recorded_metrics() -> str:
    """Every metric an alert or a dashboard panel asks for is one some service records: a renamed
    metric must not leave an alert that can never fire or a panel that is always empty."""
    recorded = recorded_metrics()
    asked: dict[str, set[str]] = {}
    for group in alert_rules()["spec"]["groups"]:
        for entry in group["rules"]:
            asked[f"alert {entry['alert']}"] = queried_metrics(entry["expr"])
    for path in sorted(GRAFANA.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard.get("panels", []):
            for target in panel.get("targets", []):
                asked.setdefault(f"{path.name}: panel {panel.get('title')!r}", set()).update(queried_metrics(target["expr"]))
    missing = {where: sorted(names - recorded) for where, names in asked.items() if names - recorded}
    expect(not missing, "\n".join(f"{where} asks for metrics no service records: {names}" for where, names in missing.items()))
    expect(all(asked.values()), f"queries without a ringiflow metric: {[w for w, n in asked.items() if not n]}")
    return f"{len(asked)} alerts and panels, {len(set().union(*asked.values()))} metrics, all recorded"


def check_graphiql_bundle(cache: Path) -> Callable[[], str]:
    def check() -> str:
        sums = {}
        for line in (GRAPHIQL / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split(None, 1)
            sums[name.lstrip("*")] = digest
        vendored = {p.name for p in (GRAPHIQL / "vendor").iterdir()}
        expect(set(sums) == vendored, f"SHA256SUMS lists {sorted(sums)}, vendor/ holds {sorted(vendored)}")
        for name, digest in sums.items():
            actual = hashlib.sha256((GRAPHIQL / "vendor" / name).read_bytes()).hexdigest()
            expect(actual == digest, f"vendor/{name}: sha256 {actual}, SHA256SUMS says {digest}")
        page = (GRAPHIQL / "index.html").read_text()
        expect("//" not in page.replace("<!--", "").split("-->")[-1] or not re.search(r"(src|href)=\"[a-z]*:?//", page),
               "index.html loads something from another origin")
        expect(not re.search(r"(src|href)=\"(https?:)?//", page), "index.html loads something from another origin")
        # Re-derive vendor/ from the pinned npm tarballs (their integrity is pinned in the
        # script); remembered per script + checksums, so it runs again only when they change.
        key = hashlib.sha256((GRAPHIQL / "update").read_bytes() + (GRAPHIQL / "SHA256SUMS").read_bytes()).hexdigest()
        marker = cache / f"graphiql-verified-{key[:16]}"
        if marker.exists():
            return f"{len(sums)} files match SHA256SUMS; matched the pinned npm packages before (cached)"
        result = run([str(GRAPHIQL / "update"), "--check"], timeout=300)
        expect(result.returncode == 0, result.stdout + result.stderr)
        marker.touch()
        return f"{len(sums)} files match SHA256SUMS and the pinned npm packages"
    return check


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gateway:
    """The real gateway binary on a free port, with unreachable backends: GraphiQL and
    `{ __typename }` need none."""

    def __init__(self, binary: str, log: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RINGIFLOW_")}
        env.update({
            "RINGIFLOW_LISTEN_ADDR": f"127.0.0.1:{self.port}",
            "RINGIFLOW_JWT_SECRET": secrets.token_hex(32),
            # Port 9 (discard) on loopback: nothing listens, so a backend call fails fast.
            "RINGIFLOW_COMMAND_URL": "http://127.0.0.1:9",
            "RINGIFLOW_QUERY_URL": "http://127.0.0.1:9",
            **settings,
        })
        self.log = log
        self.process = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL,
                                        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise Failed(f"the gateway did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), b""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Browser:
    """Headless Debian Chromium driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        import websocket  # noqa: PLC0415

        self.process = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--no-first-run", "--no-default-browser-check",
             f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
             "--remote-debugging-port=0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise Failed("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        page = next(t for t in targets if t["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise Failed(f"DevTools {method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, what: str, seconds: float = 30) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                body = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise Failed(f"{what} not seen within {seconds:.0f}s; the page shows: {body[:300]!r}")
            time.sleep(0.2)

    def close(self) -> None:
        if getattr(self, "socket", None):
            self.socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def check_graphiql_in_browser(binary: str, cache: Path) -> Callable[[], str]:
    def check() -> str:
        gateway = Gateway(binary, cache / "gateway.log")
        profile = Path(tempfile.mkdtemp(prefix="ringiflow-chromium-"))
        browser = None
        try:
            status, headers, _ = gateway.get("/graphql")
            expect(status == 200, f"GET /graphql answered {status}")
            csp = {k.lower(): v for k, v in headers.items()}.get("content-security-policy", "")
            expect("script-src 'self'" in csp, f"no Content-Security-Policy limiting scripts: {csp!r}")
            browser = Browser(profile)
            query = "{ __typename }"
            browser.call("Page.navigate", url=f"{gateway.url}/graphql?{urllib.parse.urlencode({'query': query})}")
            browser.wait_for("!!document.querySelector('.graphiql-execute-button')", "GraphiQL's run button")
            editor = browser.evaluate("(document.querySelector('.graphiql-query-editor') || {}).innerText || ''")
            expect("__typename" in editor, f"the query editor holds {editor!r}")
            # Run it as a person would: the run button.
            browser.evaluate("document.querySelector('.graphiql-execute-button').click()")
            response = browser.wait_for(
                "(t => t.includes('QueryRoot') && t)((document.querySelector('.graphiql-response') || {}).innerText || '')",
                "the query's result in the response pane")
            expect('"__typename": "QueryRoot"' in response, f"unexpected response pane: {response!r}")
            shot = browser.call("Page.captureScreenshot", format="png")
            (cache / "graphiql.png").write_bytes(base64.b64decode(shot["data"]))
            requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
            foreign = [u for u in requests if not (u.startswith(gateway.url + "/") or u.startswith("data:"))]
            expect(not foreign, f"the page requested other origins: {foreign}")
            posts = [e for e in browser.events if e.get("method") == "Network.requestWillBeSent"
                     and e["params"]["request"]["method"] == "POST"]
            expect(posts, "the result did not come from a POST to the gateway")
            errors = [e["params"] for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
                      or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
                      or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")]
            expect(not errors, f"errors in the page: {json.dumps(errors)[:2000]}")
            return (f"query ran through the UI, result shown; {len(requests)} requests, all to the gateway; "
                    f"screenshot {cache / 'graphiql.png'}")
        finally:
            if browser:
                browser.close()
            gateway.stop()
            shutil.rmtree(profile, ignore_errors=True)
    return check


def check_graphiql_switch(binary: str, cache: Path) -> Callable[[], str]:
    def check() -> str:
        gateway = Gateway(binary, cache / "gateway-off.log", RINGIFLOW_GRAPHIQL="false")
        try:
            # Without the page, GET /graphql is only the subscriptions' WebSocket upgrade: a
            # plain GET is a bad upgrade request.
            status, _, _ = gateway.get("/graphql")
            expect(status == 400, f"with RINGIFLOW_GRAPHIQL=false a plain GET /graphql answered {status}")
            status, _, _ = gateway.get("/graphiql/init.js")
            expect(status == 404, f"with RINGIFLOW_GRAPHIQL=false the assets answer {status}")
            request = urllib.request.Request(f"{gateway.url}/graphql", data=b'{"query":"{ __typename }"}',
                                             headers={"content-type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                body = json.load(response)
            expect(body == {"data": {"__typename": "QueryRoot"}}, f"POST /graphql answered {body}")
            return "RINGIFLOW_GRAPHIQL=false: no page, no assets, GraphQL still served"
        finally:
            gateway.stop()
    return check


# ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "ringiflow" / "check-deploy")
    parser.add_argument("--gateway", help="gateway binary for the GraphiQL browser check")
    parser.add_argument("--no-browser", action="store_true", help="skip the GraphiQL browser check")
    parser.add_argument("--write-k8s", action="store_true", help="regenerate k8s/base from the chart and exit")
    parser.add_argument("--write-docs", action="store_true", help="regenerate the chart README's values table and exit")
    args = parser.parse_args()
    if args.write_k8s or args.write_docs:
        if args.write_k8s:
            write_k8s()
        if args.write_docs:
            write_docs()
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)

    run_check("chart: Chart.yaml appVersion is the workspace version", check_chart_metadata)
    run_check("chart: every value commented in values.yaml and typed in values.schema.json", check_values_documented)
    run_check("chart: README.md's values table is up to date", check_values_table)
    for name, values in value_sets().items():
        run_check(f"chart: helm lint --strict ({name} values)", check_lint(name, values))
        run_check(f"chart: render + kubernetes-validate --strict ({name} values)", check_render(name, values))
    run_check("validators refuse known mistakes (self-test)", check_validators_catch_mistakes)
    run_check("chart: values.schema.json rejects bad value sets", check_schema_rejects)
    run_check("chart: checksum annotations roll the pods on a config or secret change", check_checksums_roll_pods)
    run_check("k8s: base is in sync with the chart", check_k8s_base_in_sync)
    run_check("k8s: every file passes kubernetes-validate --strict", check_k8s_files)
    run_check("k8s: kustomizations render (resources exist) and validate", check_kustomizations)
    run_check("compose: docker-compose.yml passes the compose-spec schema", check_compose_schema)
    run_check("compose: services, health checks, depends_on", check_compose_semantics)
    run_check("compose: same images, ports and settings as the chart", check_compose_matches_chart)
    run_check("proto: buf lint", check_buf_lint)
    run_check("proto: buf breaking", check_buf_breaking(args.cache))
    run_check("Dockerfile: hadolint", check_hadolint)
    run_check("Dockerfile: structure", check_dockerfile)
    run_check("Dockerfile: the build context (after .dockerignore) holds what the build needs", check_build_context)
    run_check("GraphiQL: vendored bundle integrity", check_graphiql_bundle(args.cache))
    run_check("prometheus: alerts.yaml is a PrometheusRule; promtool checks and unit-tests it", check_alerts_promtool)
    run_check("prometheus, grafana: every queried metric is recorded by a service", check_queries_name_recorded_metrics)
    if args.no_browser:
        print("skip GraphiQL in Chromium (--no-browser)")
    else:
        expect_binary = args.gateway and Path(args.gateway).is_file()
        if not expect_binary:
            RESULTS.append(("GraphiQL: gateway binary", False, f"not found: {args.gateway}"))
        else:
            run_check("GraphiQL: a query runs through the UI in headless Chromium", check_graphiql_in_browser(args.gateway, args.cache))
            run_check("GraphiQL: RINGIFLOW_GRAPHIQL=false switches it off", check_graphiql_switch(args.gateway, args.cache))

    failed = [name for name, ok, _ in RESULTS if not ok]
    print()
    print(f"check-deploy: {len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    for name in failed:
        print(f"  FAILED: {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
