"""The deployment files, checked statically: Dockerfile, .dockerignore and k8s/.

There is no container engine or cluster in the test environment, so the real
linters run as subprocesses (hadolint, kubernetes-validate from the venv), and
our own policy checks run over the parsed files. Every policy check is also
shown to fail on a mutated copy, so a green run means something. Finally the
files the Dockerfile copies are staged on their own and started through the
entrypoint with the pod's configuration, the closest we get to running the image.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import runpy
import shlex
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from safe_migrations.settings import MigrationSettings
from safe_migrations.startup_budget import SERVE_SECONDS, Budget, LongStatement
from tests.helpers import BIN, REPO, child_env, free_port, run, wait_for_http
from weather.config import load_config

K8S = REPO / "k8s"
DOCKERFILE = REPO / "Dockerfile"
# Bundled with kubernetes-validate 1.37.0 (no network needed): the oldest and
# the newest Kubernetes minor versions it knows.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
APP_UID = 10001
CONTAINER_PORT = 8000
# Least privilege: each Secret key is mounted exactly where it is read ("file:container"), and
# each reader is named by the code that reads the key (checked below, so the table cannot drift).
API, WORKER, FETCH, NOWCAST, POST_DEPLOY, REHEARSE, RETENTION = (
    "deployment.yaml:weather-backend",
    "push-worker-deployment.yaml:push-worker",
    "forecast-fetch-cronjob.yaml:forecast-fetch",
    "forecast-fetch-ultra-cronjob.yaml:forecast-fetch",
    "post-deploy-job.yaml:post-deploy",
    "rehearse-job.yaml:rehearse",
    "retention-cronjob.yaml:retention",
)
SECRET_READERS: dict[str, tuple[set[str], tuple[str, ...]]] = {
    # Every process opens the database.
    # (The rehearsal Job's DATABASE_URL is a read-only role's, from a Secret of its own.)
    "DATABASE_URL": ({API, WORKER, FETCH, NOWCAST, POST_DEPLOY, REHEARSE, RETENTION}, ("weather/config.py",)),
    # Write endpoints check it (weather/auth.py) and cursors are signed with it: only requests read it.
    "API_TOKEN": ({API}, ("weather/auth.py", "weather/cursor.py")),
    # Migrations: pod start-up and the post-deploy Job.
    "MIGRATION_DATABASE_URL": ({API, POST_DEPLOY}, ("safe_migrations/settings.py",)),
    # Only a push sender needs the FCM service account; only the fetch needs KMA's key.
    "FCM_CREDENTIALS": ({WORKER}, ("weather/push/senders.py",)),
    "KMA_SERVICE_KEY": ({FETCH, NOWCAST}, ("weather/forecasts_cli.py",)),
    # Where flask db rehearse makes its scratch copy (a role with CREATEDB).
    "REHEARSE_DATABASE_URL": ({REHEARSE}, ("safe_migrations/settings.py",)),
}
# MIGRATION_DATABASE_URL absent = migrations use DATABASE_URL; REHEARSE_DATABASE_URL is in the
# rehearsal Job's own Secret (k8s/rehearse-job.yaml).
OPTIONAL_SECRETS = {"MIGRATION_DATABASE_URL", "REHEARSE_DATABASE_URL"}
SECRET_ENV = tuple(key for key, (readers, _) in SECRET_READERS.items() if API in readers)
# What the image must contain to start; nothing for development only.
RUNTIME_FILES = ("app.py", "models.py", "gunicorn.conf.py", "entrypoint.sh", "weather", "safe_migrations", "migrations")
DEV_ONLY = ("tests", "bench", "docs", ".venv", ".git", "instance")
SECRET_LOOKING_KEY = re.compile(
    r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|API_KEY|SERVICE_KEY|PRIVATE_KEY|DATABASE_URL", re.I
)
URL_WITH_PASSWORD = re.compile(r"://[^/@:\s]+:[^/@\s]+@")
# An obvious placeholder: CHANGE-ME, PASSWORD, DB-PASSWORD, DBNAME, <your-token>. Capitals
# alone are not enough ("HUNTER2" is a password): it must name what goes there.
PLACEHOLDER = re.compile(
    r"^(?:<[^<>]+>|(?:[A-Z]+[-_])*(?:CHANGE[-_]ME|REPLACE[-_]ME|PASSWORD|USER|USERNAME|HOST|HOSTNAME|DBNAME|DATABASE"
    r"|TOKEN|SECRET)(?:[-_][A-Z]+)*)$"
)
PLACEHOLDER_URL = re.compile(
    r"^[a-z0-9+]+://(?P<user>[^:@/]+)(?::(?P<password>[^@/]*))?@(?P<host>[^:/]+)(?::(?P<port>\d+))?/(?P<db>[^/?]+)$"
)


# --------------------------------------------------------------------------- loading


def load_manifest(name: str) -> dict[str, Any]:
    documents = [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    assert len(documents) == 1, f"k8s/{name} should hold exactly one document"
    return documents[0]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, even inside a continuation
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        instructions.append(_instruction(pending + line))
        pending = ""
    if pending:  # a continuation on the last line
        instructions.append(_instruction(pending))
    return instructions


def _instruction(line: str) -> tuple[str, str]:
    keyword, _, arguments = line.strip().partition(" ")
    return keyword.upper(), arguments.strip()


def copy_sources(arguments: str) -> list[str]:
    """The source paths of a COPY/ADD (flags and destination dropped), normalised without a trailing slash."""
    parts = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    parts = [part for part in parts if not part.startswith("--")]
    return [source.rstrip("/") or "." for source in parts[:-1]]


def env_assignments(arguments: str) -> dict[str, str]:
    parts = shlex.split(arguments)
    if parts and "=" not in parts[0]:  # legacy form: ENV KEY value
        return {parts[0]: " ".join(parts[1:])}
    return dict(part.split("=", 1) for part in parts)


# --------------------------------------------------------------------------- policy


def _from_image(arguments: str) -> str:
    """The image of ``FROM [--platform=...] image[:tag] [AS name]``."""
    return next((word for word in arguments.split() if not word.startswith("--")), "")


def dockerfile_violations(text: str) -> list[str]:
    """Everything our policy refuses in a Dockerfile; an empty list means it passes."""
    problems: list[str] = []
    instructions = dockerfile_instructions(text)

    bases = [_from_image(args) for kw, args in instructions if kw == "FROM"]
    if not bases:
        problems.append("no FROM")
    for base in bases:
        if ":" not in base.split("/")[-1] or base.endswith(":latest"):
            problems.append(f"base image {base!r} is not pinned by tag")

    users = [args.split(":")[0] for kw, args in instructions if kw == "USER"]
    if not users:
        problems.append("no USER: the image would run as root")
    elif users[-1] in ("0", "root") or not users[-1].isdigit():
        problems.append(f"USER {users[-1]!r} must be a numeric non-root UID (so runAsNonRoot can verify it)")

    entrypoints = [args for kw, args in instructions if kw == "ENTRYPOINT"]
    if not entrypoints or entrypoints[-1].replace(" ", "") != '["./entrypoint.sh"]':
        problems.append('ENTRYPOINT must be ["./entrypoint.sh"] (exec form, so signals reach gunicorn)')

    copies = [(index, copy_sources(args)) for index, (kw, args) in enumerate(instructions) if kw in ("COPY", "ADD")]
    copied = {source for _, sources in copies for source in sources}
    for name in RUNTIME_FILES:
        if name not in copied:
            problems.append(f"{name} is not copied into the image")
    for source in sorted(copied):
        if source in (".", "*") or source in DEV_ONLY:
            problems.append(f"COPY {source} brings development files into the image")

    installs = [
        index
        for index, (kw, args) in enumerate(instructions)
        if kw == "RUN" and "pip install" in args and "requirements.txt" in args
    ]
    code_copies = [index for index, sources in copies if any(not s.startswith("requirements") for s in sources)]
    if not installs:
        problems.append("requirements.txt is never installed with pip")
    elif code_copies and min(code_copies) < installs[0]:
        problems.append("code is copied before requirements.txt is installed (breaks layer caching)")
    for kw, args in instructions:
        if kw == "RUN" and "pip install" in args and "--no-cache-dir" not in args:
            problems.append("pip install without --no-cache-dir")
        if kw == "RUN" and "apt-get install" in args:
            if "--no-install-recommends" not in args:
                problems.append("apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in args:
                problems.append("apt lists are not cleaned in the same layer")

    env: dict[str, str] = {}
    for kw, args in instructions:
        if kw == "ENV":
            env.update(env_assignments(args))
    for name, value in (("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1"), ("PORT", str(CONTAINER_PORT))):
        if env.get(name) != value:
            problems.append(f"ENV {name}={value} missing")
    if not env.get("BACKUP_DIR", "").startswith("/tmp/"):
        problems.append("BACKUP_DIR must point at the writable /tmp (read-only root filesystem)")
    if "APP_VERSION" not in env or not any(kw == "ARG" and args.startswith("APP_VERSION") for kw, args in instructions):
        problems.append("no ARG/ENV APP_VERSION for the image version")
    if f"{CONTAINER_PORT}" not in [args for kw, args in instructions if kw == "EXPOSE"]:
        problems.append(f"EXPOSE {CONTAINER_PORT} missing")
    return problems


def _port_number(port: int | str, container: dict[str, Any]) -> int | None:
    if isinstance(port, int):
        return port
    named = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    return named.get(port)


def _probe_path(container: dict[str, Any], probe: str) -> tuple[str | None, int | None]:
    get = (container.get(probe) or {}).get("httpGet") or {}
    return get.get("path"), _port_number(get.get("port"), container)


def deployment_violations(deployment: dict[str, Any]) -> list[str]:
    """Everything our policy refuses in the Deployment; an empty list means it passes."""
    problems: list[str] = []
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    if strategy.get("type") != "RollingUpdate":
        problems.append("strategy must be RollingUpdate")
    if rolling.get("maxUnavailable") not in (0, "0", "0%"):
        problems.append("rolling update must have maxUnavailable 0 (capacity never drops)")
    if rolling.get("maxSurge") in (None, 0, "0", "0%"):
        problems.append("rolling update needs maxSurge > 0 (with maxUnavailable 0)")

    pod = (spec.get("template") or {}).get("spec") or {}
    pod_security = pod.get("securityContext") or {}
    if pod_security.get("runAsNonRoot") is not True:
        problems.append("pod securityContext.runAsNonRoot must be true")
    if pod_security.get("runAsUser") != APP_UID:
        problems.append(f"pod securityContext.runAsUser must be {APP_UID} (the image's USER)")
    if pod_security.get("fsGroup") is None:
        problems.append("pod securityContext.fsGroup missing (volumes writable by the app user)")
    if (pod_security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod seccompProfile must be RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false")
    if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
        problems.append("pod must not share host namespaces")

    volumes = {volume.get("name"): volume for volume in pod.get("volumes") or []}
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    if not pod.get("containers"):
        problems.append("no containers")
    for container in containers:
        name = container.get("name", "?")
        security = container.get("securityContext") or {}
        capabilities = security.get("capabilities") or {}
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem must be true")
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{name}: capabilities must drop ALL")
        if capabilities.get("add"):
            problems.append(f"{name}: must not add capabilities")
        if security.get("privileged"):
            problems.append(f"{name}: must not be privileged")
        if security.get("runAsUser") == 0 or security.get("runAsNonRoot") is False:
            problems.append(f"{name}: must not run as root")

        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(kind) or {}).get(resource):
                    problems.append(f"{name}: resources.{kind}.{resource} missing")

        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz")):
            actual, port = _probe_path(container, probe)
            if actual != path:
                problems.append(f"{name}: {probe} must GET {path} (found {actual})")
            elif port != CONTAINER_PORT:
                problems.append(f"{name}: {probe} must target port {CONTAINER_PORT} (found {port})")

        env = container.get("env") or []
        for item in env:
            key = item.get("name", "")
            from_secret = "secretKeyRef" in (item.get("valueFrom") or {})
            if SECRET_LOOKING_KEY.search(key) and not from_secret:
                problems.append(f"{name}: {key} must come from a secretKeyRef, not a literal or ConfigMap")
            if URL_WITH_PASSWORD.search(str(item.get("value", ""))):
                problems.append(f"{name}: {key} holds a URL with a password in plain text")
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                problems.append(f"{name}: envFrom secretRef exposes every key; use secretKeyRef per variable")

        mounts = {mount.get("mountPath"): mount.get("name") for mount in container.get("volumeMounts") or []}
        if "emptyDir" not in volumes.get(mounts.get("/tmp"), {}):
            problems.append(f"{name}: /tmp must be an emptyDir (the only writable path)")
    return problems


def configmap_violations(configmap: dict[str, Any]) -> list[str]:
    """Secrets never live in the ConfigMap, and its values are ones the service accepts."""
    problems: list[str] = []
    data = configmap.get("data") or {}
    for key, value in data.items():
        if SECRET_LOOKING_KEY.search(key):
            problems.append(f"ConfigMap key {key} looks secret: put it in the Secret")
        if URL_WITH_PASSWORD.search(str(value)):
            problems.append(f"ConfigMap value of {key} is a URL with a password")
        if not isinstance(value, str):
            problems.append(f"ConfigMap value of {key} must be a string")
    for key in ("LOG_LEVEL", "WEB_CONCURRENCY", "APP_VERSION", "DB_WAIT_TIMEOUT", "MIGRATION_LOCK_WAIT"):
        if key not in data:
            problems.append(f"ConfigMap lacks {key}")
    return problems


def secret_example_violations(secret: dict[str, Any]) -> list[str]:
    """The example Secret shows the shape only: every value is an obvious placeholder."""
    problems: list[str] = []
    if secret.get("kind") != "Secret":
        problems.append("not a Secret")
    if secret.get("data"):
        problems.append("use stringData with placeholders, not base64 data")
    values = secret.get("stringData") or {}
    for key in SECRET_READERS.keys() - OPTIONAL_SECRETS:
        if key not in values:
            problems.append(f"the example lacks {key}")
    for key, value in values.items():
        value = str(value)
        if "://" in value:
            parsed = PLACEHOLDER_URL.match(value)
            parts = [part for name, part in parsed.groupdict().items() if name != "port"] if parsed else [value]
            if not all(part is None or PLACEHOLDER.match(part) for part in parts):
                problems.append(
                    f"{key} is not an obvious placeholder URL (like postgresql://USER:PASSWORD@HOST/DBNAME)"
                )
        elif not PLACEHOLDER.match(value):
            problems.append(f"{key} is not an obvious placeholder")
    return problems


# --------------------------------------------------------------------------- real tools


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing next to {BIN}; run make test (it installs requirements-dev.txt)"
    return str(path)


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return run([tool("hadolint"), "--no-color", "--failure-threshold", "style", str(path)])


def test_hadolint_passes_on_the_dockerfile():
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install flask\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013"):
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda path: path.name)
def test_kubernetes_validate_passes(path, version):
    result = run([tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    if path.name == "kustomization.yaml":  # a kustomize file, not an API object: no schema to check against
        assert "Couldn't find schema for kind Kustomization" in result.stdout + result.stderr
    else:
        assert "passed" in result.stdout, result.stdout + result.stderr


def test_kubernetes_validate_rejects_a_bad_manifest(tmp_path):
    deployment = load_manifest("deployment.yaml")
    deployment["spec"]["replicas"] = "two"
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True  # typo
    bad = tmp_path / "deployment.yaml"
    bad.write_text(yaml.safe_dump(deployment))
    result = run([tool("kubernetes-validate"), "--strict", "--kubernetes-version", KUBERNETES_VERSIONS[0], str(bad)])
    assert result.returncode != 0
    assert "replicas" in result.stdout + result.stderr


# --------------------------------------------------------------------------- our policy on the real files


def test_dockerfile_follows_the_policy():
    assert dockerfile_violations(DOCKERFILE.read_text()) == []


def test_deployment_follows_the_policy():
    assert deployment_violations(load_manifest("deployment.yaml")) == []


# The push worker serves no HTTP: it has no probes (procrastinate's heartbeat in
# the database marks a dead worker; its jobs go to the others).
WORKER_WITHOUT_HTTP = {
    f"push-worker: {probe} must GET {path} (found None)"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/readyz"))
}


def secret_mounts(manifests: dict[str, Any]) -> dict[str, set[str]]:
    """Secret key -> the containers ("file:container") that get it, from the parsed manifests."""
    mounts: dict[str, set[str]] = {}
    for name, document in manifests.items():
        for container in _containers(document):
            for item in container.get("env") or []:
                ref = (item.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    mounts.setdefault(ref["key"], set()).add(f"{name}:{container['name']}")
    return mounts


def secret_mount_violations(manifests: dict[str, Any]) -> list[str]:
    """Each Secret key is mounted exactly where it is read: nowhere else, and not missing where needed."""
    problems: list[str] = []
    mounts = secret_mounts(manifests)
    for key in sorted(set(mounts) | set(SECRET_READERS)):
        readers = SECRET_READERS.get(key, (set(), ()))[0]
        for container in sorted(mounts.get(key, set()) - readers):
            problems.append(f"{key} is mounted where it is not read: {container}")
        for container in sorted(readers - mounts.get(key, set())):
            problems.append(f"{key} is not mounted where it is read: {container}")
    return problems


def all_manifests() -> dict[str, Any]:
    return {path.name: load_manifest(path.name) for path in sorted(K8S.glob("*.yaml"))}


def test_each_secret_key_is_mounted_only_where_it_is_read():
    assert secret_mount_violations(all_manifests()) == []
    # The table names real readers: each key is read by the code it names, and the example lists every key.
    for key, (_, readers) in SECRET_READERS.items():
        for source in readers:
            assert f'"{key}"' in (REPO / source).read_text(), f"{source} no longer reads {key}: update SECRET_READERS"
    assert set(load_manifest("secret.example.yaml")["stringData"]) | OPTIONAL_SECRETS == set(SECRET_READERS)


SECRET_MUTATIONS = {
    "API_TOKEN is mounted where it is not read: push-worker": lambda m: _container(m["push-worker-deployment.yaml"])[
        "env"
    ].append({"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "API_TOKEN"}}}),
    "KMA_SERVICE_KEY is not mounted where it is read: forecast-fetch": lambda m: _containers(
        m["forecast-fetch-cronjob.yaml"]
    )[0]["env"].pop(),
    "FCM_CREDENTIALS is mounted where it is not read: deployment.yaml": lambda m: _container(m["deployment.yaml"])[
        "env"
    ].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "FCM_CREDENTIALS"}}}),
}


@pytest.mark.parametrize("expected", SECRET_MUTATIONS)
def test_secret_mount_policy_reports_each_violation(expected):
    manifests = copy.deepcopy(all_manifests())
    SECRET_MUTATIONS[expected](manifests)
    problems = secret_mount_violations(manifests)
    assert any(expected in problem for problem in problems), problems


def test_push_worker_deployment_follows_the_same_policy():
    worker, api = load_manifest("push-worker-deployment.yaml"), load_manifest("deployment.yaml")
    assert set(deployment_violations(worker)) == WORKER_WITHOUT_HTTP
    worker_pod, api_pod = _pod(worker), _pod(api)
    assert worker_pod["securityContext"] == api_pod["securityContext"]
    assert _container(worker)["securityContext"] == _container(api)["securityContext"]
    assert _container(worker)["image"] == _container(api)["image"]  # one image, another command
    assert _container(worker)["command"] == ["flask", "push", "worker"]
    assert worker["spec"]["replicas"] >= 2
    # Running deliveries finish inside the grace period: each call is bounded by PUSH_TIMEOUT_SECONDS.
    data = load_manifest("configmap.yaml")["data"]
    assert float(data["PUSH_TIMEOUT_SECONDS"]) < float(data["PUSH_SHUTDOWN_SECONDS"])
    assert float(data["PUSH_SHUTDOWN_SECONDS"]) < worker_pod["terminationGracePeriodSeconds"]


def test_configmap_holds_no_secrets_and_valid_settings():
    configmap = load_manifest("configmap.yaml")
    assert configmap_violations(configmap) == []
    data = configmap["data"]
    # The real parsers accept every value (a typo would crash-loop every pod).
    MigrationSettings.from_env(data)
    # The API pods' environment: no FCM service account (only the push workers build a sender).
    config = load_config({**data, "DATABASE_URL": "postgresql://USER:PASSWORD@HOST:5432/DBNAME"}, "instance")
    # The cluster always names a real push provider; the recording sender is refused there.
    assert config["APP_ENV"] == "production" and config["PUSH_PROVIDER"] in ("fcm", "webhook")


def test_secret_example_holds_placeholders_only():
    assert secret_example_violations(load_manifest("secret.example.yaml")) == []


def test_deployment_reads_the_configmap_and_secret_that_exist():
    deployment = load_manifest("deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    configmap, secret = load_manifest("configmap.yaml"), load_manifest("secret.example.yaml")
    assert [source["configMapRef"]["name"] for source in container["envFrom"]] == [configmap["metadata"]["name"]]
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in container["env"]}
    assert {ref["name"] for ref in refs.values()} == {secret["metadata"]["name"]}
    assert {name for name, ref in refs.items() if not ref.get("optional")} == set(SECRET_ENV) - OPTIONAL_SECRETS
    assert refs["MIGRATION_DATABASE_URL"]["optional"] is True
    assert all(ref["key"] == name for name, ref in refs.items())
    # Nothing is set twice (a literal env entry would silently override the ConfigMap).
    assert not set(refs) & set(configmap["data"])


def test_service_routes_port_80_to_the_container_port():
    service, deployment = load_manifest("service.yaml"), load_manifest("deployment.yaml")
    pod_template = deployment["spec"]["template"]
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert _port_number(port["targetPort"], pod_template["spec"]["containers"][0]) == CONTAINER_PORT
    selector = service["spec"]["selector"]
    assert selector.items() <= pod_template["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_template["metadata"]["labels"].items()


def test_kustomization_lists_everything_but_the_secret():
    kustomization = load_manifest("kustomization.yaml")
    # The post-deploy Job runs after the rollout, not with it: not a resource either.
    assert sorted(kustomization["resources"]) == [
        "configmap.yaml",
        "deployment.yaml",
        "forecast-fetch-cronjob.yaml",
        "forecast-fetch-ultra-cronjob.yaml",
        "networkpolicy-api.yaml",
        "networkpolicy-forecast-fetch.yaml",
        "networkpolicy-post-deploy.yaml",
        "networkpolicy-push-worker.yaml",
        "networkpolicy-rehearse.yaml",
        "networkpolicy-retention.yaml",
        "pdb.yaml",
        "push-worker-deployment.yaml",
        "retention-cronjob.yaml",
        "service.yaml",
    ]
    assert all((K8S / resource).is_file() for resource in kustomization["resources"])
    assert "secret.example.yaml" not in yaml.safe_dump(kustomization)
    assert "kubectl create secret" in (K8S / "kustomization.yaml").read_text()


DNS, POSTGRESQL, HTTPS = {("UDP", 53), ("TCP", 53)}, {("TCP", 5432), ("TCP", 6432)}, {("TCP", 443)}
PRIVATE_RANGES = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
# Workload -> (its NetworkPolicy, ingress ports, egress ports): the web serves its port and reaches
# PostgreSQL; the fetch reaches KMA, the worker the push provider (HTTPS, never the cluster's ranges).
NETWORK = {
    "deployment.yaml": ("networkpolicy-api.yaml", {("TCP", CONTAINER_PORT)}, DNS | POSTGRESQL),
    "push-worker-deployment.yaml": ("networkpolicy-push-worker.yaml", set(), DNS | POSTGRESQL | HTTPS),
    "forecast-fetch-cronjob.yaml": ("networkpolicy-forecast-fetch.yaml", set(), DNS | POSTGRESQL | HTTPS),
    "forecast-fetch-ultra-cronjob.yaml": ("networkpolicy-forecast-fetch.yaml", set(), DNS | POSTGRESQL | HTTPS),
    "post-deploy-job.yaml": ("networkpolicy-post-deploy.yaml", set(), DNS | POSTGRESQL),
    "rehearse-job.yaml": ("networkpolicy-rehearse.yaml", set(), DNS | POSTGRESQL),
    "retention-cronjob.yaml": ("networkpolicy-retention.yaml", set(), DNS | POSTGRESQL),
}


def _pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    return spec["jobTemplate"]["spec"]["template"] if "jobTemplate" in spec else spec["template"]


def network_violations(policy: dict[str, Any], workload: dict[str, Any], ingress: set, egress: set) -> list[str]:
    """The policy selects the workload's pods, isolates both directions and opens exactly these ports."""
    problems: list[str] = []
    spec = policy.get("spec") or {}
    template = _pod_template(workload)
    selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
    if not selector or not selector.items() <= template["metadata"]["labels"].items():
        problems.append("the policy does not select the workload's pods")
    if set(spec.get("policyTypes") or []) != {"Ingress", "Egress"}:
        problems.append("policyTypes must isolate both Ingress and Egress")
    container = template["spec"]["containers"][0]

    def opened(rules: list[dict[str, Any]]) -> set[tuple[str, int | None]]:
        return {
            (port.get("protocol", "TCP"), _port_number(port.get("port"), container))
            for rule in rules
            for port in rule.get("ports") or [{"port": None}]  # a rule without ports opens every port
        }

    if opened(spec.get("ingress") or []) != ingress:
        problems.append(f"ingress opens {sorted(opened(spec.get('ingress') or []), key=str)}, expected {ingress}")
    if opened(spec.get("egress") or []) != egress:
        problems.append(f"egress opens {sorted(opened(spec.get('egress') or []), key=str)}, expected {egress}")
    for rule in spec.get("egress") or []:
        ports = {(port.get("protocol", "TCP"), port.get("port")) for port in rule.get("ports") or []}
        if ports & HTTPS:
            blocks = [peer.get("ipBlock") or {} for peer in rule.get("to") or [{}]]
            if not all(set(block.get("except") or []) >= PRIVATE_RANGES for block in blocks):
                problems.append("HTTPS egress must exclude the cluster's private ranges")
    return problems


@pytest.mark.parametrize("workload", NETWORK)
def test_each_workload_has_a_network_policy(workload):
    policy_file, ingress, egress = NETWORK[workload]
    assert network_violations(load_manifest(policy_file), load_manifest(workload), ingress, egress) == []


NETWORK_MUTATIONS = {
    "does not select": lambda p: p["spec"]["podSelector"]["matchLabels"].update({"app.kubernetes.io/component": "x"}),
    "isolate both": lambda p: p["spec"].update(policyTypes=["Ingress"]),
    "egress opens": lambda p: p["spec"]["egress"].append({"ports": [{"port": 6379}]}),
    "ingress opens": lambda p: p["spec"]["ingress"][0].pop("ports"),
    "private ranges": lambda p: p["spec"]["egress"].append(
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}
    ),
}


@pytest.mark.parametrize("expected", NETWORK_MUTATIONS)
def test_network_policy_reports_each_violation(expected):
    policy = copy.deepcopy(load_manifest("networkpolicy-api.yaml"))
    NETWORK_MUTATIONS[expected](policy)
    problems = network_violations(policy, load_manifest("deployment.yaml"), *NETWORK["deployment.yaml"][1:])
    assert any(expected in problem for problem in problems), problems


def test_image_version_is_the_same_everywhere():
    (image,) = load_manifest("kustomization.yaml")["images"]
    container = load_manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    name, _, tag = container["image"].partition(":")
    assert name == image["name"]
    assert tag == image["newTag"] == load_manifest("configmap.yaml")["data"]["APP_VERSION"]
    assert _container(load_manifest("post-deploy-job.yaml"))["image"] == container["image"]
    assert _container(load_manifest("rehearse-job.yaml"))["image"] == container["image"]


def test_rehearse_job_gates_on_the_stall_and_reads_live_with_its_own_role():
    job = load_manifest("rehearse-job.yaml")
    command = _container(job)["command"]
    assert command[:3] == ["flask", "db", "rehearse"] and "--max-stall" in command
    refs = {item["name"]: item["valueFrom"]["secretKeyRef"] for item in _container(job)["env"]}
    assert refs["DATABASE_URL"]["name"] == "weather-backend-rehearse"  # a read-only role, not the app's
    assert "rehearse-job.yaml" not in load_manifest("kustomization.yaml")["resources"]


# The derivation written in k8s/configmap.yaml: per rollout, pod start-up runs at
# most this many statements at MIGRATION_STATEMENT_TIMEOUT (slow contract steps
# are post-deploy revisions, run by the Job), and this long to import and serve.
SLOW_STATEMENTS_AT_START_UP = 2


def test_startup_budget_is_derived_from_the_statement_timeout():
    container = load_manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    settings = MigrationSettings.from_env(load_manifest("configmap.yaml")["data"])
    probe = container["startupProbe"]
    budget = probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe["failureThreshold"]
    migrating = SLOW_STATEMENTS_AT_START_UP * settings.statement_timeout + settings.lock_retry_seconds
    # The other pods wait for the migrating pod's lock at least as long as it may migrate ...
    assert settings.lock_wait >= migrating
    # ... and none is killed by its own startup probe while waiting for the database, then the lock.
    assert budget >= settings.db_wait_timeout + settings.lock_wait + SERVE_SECONDS
    # Start-up enforces the budget with the probe's own figure (safe_migrations/startup_budget.py) ...
    assert settings.startup_probe == budget
    # ... and the configmap's "at most 2 long statements" is exactly what fits.
    fits = Budget([LongStatement("r", "UPDATE t SET a = 1")] * SLOW_STATEMENTS_AT_START_UP, settings)
    assert fits.fits and not Budget([*fits.long, fits.long[0]], settings).fits
    # The configmap says so, with the figures.
    text = (K8S / "configmap.yaml").read_text()
    assert "derived from the migration statement timeout" in text
    assert f"= {budget} s" in text and f"{int(migrating)} s" in text


GUIDE_SETTING_ROW = re.compile(r"^\| `(?P<name>[A-Z_]+)` \| [^|]* \| (?P<k8s>[^|]*?) \|", re.M)


def test_the_k8s_figures_the_guide_quotes_come_from_the_manifests():
    guide = (REPO / "docs" / "migration-guide.md").read_text()
    data = load_manifest("configmap.yaml")["data"]
    settings = MigrationSettings.from_env(data)
    rows = {m["name"]: m["k8s"].strip("` ") for m in GUIDE_SETTING_ROW.finditer(guide) if m["name"] in data}
    quoted = {"DB_WAIT_TIMEOUT", "MIGRATION_LOCK_WAIT", "STARTUP_PROBE_SECONDS", "MIGRATION_STATEMENT_TIMEOUT"}
    assert quoted <= set(rows)
    assert rows == {name: data[name] for name in rows}
    probe = load_manifest("deployment.yaml")["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    budget = probe["periodSeconds"] * probe["failureThreshold"]
    db_wait, lock_wait = int(settings.db_wait_timeout), int(settings.lock_wait)
    assert f"startupProbe 예산({budget}초)" in guide and f"({db_wait} + {lock_wait} + {SERVE_SECONDS})" in guide
    retries = int(settings.lock_retry_seconds)
    assert f"`MIGRATION_STATEMENT_TIMEOUT`({settings.statement_timeout:g}) + lock_timeout 재시도({retries}초)" in guide
    three = 3 * settings.statement_timeout + settings.lock_retry_seconds
    allowed = budget - settings.db_wait_timeout - SERVE_SECONDS
    times = "\N{MULTIPLICATION SIGN}"
    assert f"3 {times} {settings.statement_timeout:g} + {retries} = {three:g}초 > {allowed:g}초" in guide


def job_violations(job: dict[str, Any], deployment: dict[str, Any]) -> list[str]:
    """The post-deploy Job runs `flask db upgrade` exactly as the pods run the image."""
    problems: list[str] = []
    spec = job.get("spec") or {}
    pod, web = _pod(job), _pod(deployment)
    container, web_container = pod["containers"][0], web["containers"][0]
    if container.get("command") != ["flask", "db", "upgrade"]:
        problems.append("the Job must run flask db upgrade")
    for key in ("image", "envFrom", "securityContext", "volumeMounts"):
        if container.get(key) != web_container.get(key):
            problems.append(f"the Job's container {key} differs from the Deployment's")
    # The same environment, less the Secret keys the Job never reads (API_TOKEN: it serves no request).
    unread = {key for key, (readers, _) in SECRET_READERS.items() if POST_DEPLOY not in readers}
    if container.get("env") != [item for item in web_container.get("env") or [] if item["name"] not in unread]:
        problems.append("the Job's container env differs from the Deployment's")
    for key in ("securityContext", "volumes", "automountServiceAccountToken"):
        if pod.get(key) != web.get(key):
            problems.append(f"the Job's pod {key} differs from the Deployment's")
    if pod.get("restartPolicy") != "Never":
        problems.append("the Job's restartPolicy must be Never (backoffLimit retries)")
    if not isinstance(spec.get("backoffLimit"), int):
        problems.append("the Job needs a backoffLimit")
    if not isinstance(spec.get("activeDeadlineSeconds"), int):
        problems.append("the Job needs an activeDeadlineSeconds")
    return problems


def test_post_deploy_job_runs_the_image_like_the_pods():
    job, deployment = load_manifest("post-deploy-job.yaml"), load_manifest("deployment.yaml")
    assert job_violations(job, deployment) == []
    settings = MigrationSettings.from_env(load_manifest("configmap.yaml")["data"])
    # It may wait for the database and for a pod's migration lock, then run a few slow statements.
    needed = settings.db_wait_timeout + settings.lock_wait + 3 * settings.statement_timeout
    assert job["spec"]["activeDeadlineSeconds"] >= needed
    header = (K8S / "post-deploy-job.yaml").read_text()
    assert header.index("kubectl rollout status") < header.index("kubectl create -f k8s/post-deploy-job.yaml")


JOB_MUTATIONS = {
    "must run flask db upgrade": lambda j: _container(j).update(command=["flask", "db", "current"]),
    "container securityContext differs": lambda j: _container(j)["securityContext"].update(
        readOnlyRootFilesystem=False
    ),
    "container env differs": lambda j: _container(j)["env"].pop(0),
    "pod securityContext differs": lambda j: _pod(j)["securityContext"].update(runAsUser=0),
    "restartPolicy must be Never": lambda j: _pod(j).update(restartPolicy="OnFailure"),
    "needs a backoffLimit": lambda j: j["spec"].pop("backoffLimit"),
    "needs an activeDeadlineSeconds": lambda j: j["spec"].pop("activeDeadlineSeconds"),
}


@pytest.mark.parametrize("expected", JOB_MUTATIONS)
def test_job_policy_reports_each_violation(expected):
    job = copy.deepcopy(load_manifest("post-deploy-job.yaml"))
    JOB_MUTATIONS[expected](job)
    problems = job_violations(job, load_manifest("deployment.yaml"))
    assert any(expected in problem for problem in problems), problems


def disruption_violations(pdb: dict[str, Any], deployment: dict[str, Any]) -> list[str]:
    """A node drain never takes every replica: a PDB keeping one, replicas spread over nodes."""
    problems: list[str] = []
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = (pdb.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    if not selector or not selector.items() <= labels.items():
        problems.append("the PodDisruptionBudget does not select the API pods")
    available = (pdb.get("spec") or {}).get("minAvailable")
    if not isinstance(available, int) or not 1 <= available < deployment["spec"]["replicas"]:
        problems.append("minAvailable must keep at least one replica and let a drain evict one")
    spread = _pod(deployment).get("topologySpreadConstraints") or []
    hosts = [c for c in spread if c.get("topologyKey") == "kubernetes.io/hostname"]
    if not hosts or not hosts[0]["labelSelector"]["matchLabels"].items() <= labels.items():
        problems.append("replicas must be spread over nodes (topologyKey kubernetes.io/hostname)")
    return problems


def test_a_node_drain_never_takes_every_replica():
    assert disruption_violations(load_manifest("pdb.yaml"), load_manifest("deployment.yaml")) == []


DISRUPTION_MUTATIONS = {
    "does not select the API pods": lambda p, d: p["spec"]["selector"]["matchLabels"].update(
        {"app.kubernetes.io/component": "worker"}
    ),
    "minAvailable must keep": lambda p, d: p["spec"].update(minAvailable=d["spec"]["replicas"]),
    "spread over nodes": lambda p, d: _pod(d).pop("topologySpreadConstraints"),
}


@pytest.mark.parametrize("expected", DISRUPTION_MUTATIONS)
def test_disruption_policy_reports_each_violation(expected):
    pdb, deployment = copy.deepcopy(load_manifest("pdb.yaml")), copy.deepcopy(load_manifest("deployment.yaml"))
    DISRUPTION_MUTATIONS[expected](pdb, deployment)
    problems = disruption_violations(pdb, deployment)
    assert any(expected in problem for problem in problems), problems


def test_shutdown_fits_in_the_grace_period(monkeypatch):
    deployment = load_manifest("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for key, value in load_manifest("configmap.yaml")["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("GUNICORN_GRACEFUL_TIMEOUT", raising=False)
    gunicorn = runpy.run_path(str(REPO / "gunicorn.conf.py"))
    assert gunicorn["bind"].endswith(f":{CONTAINER_PORT}")
    assert gunicorn["loglevel"] == "info"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert int(pre_stop[1]) + gunicorn["graceful_timeout"] < pod["terminationGracePeriodSeconds"]


def test_dockerfile_user_matches_the_pod():
    users = [args for kw, args in dockerfile_instructions(DOCKERFILE.read_text()) if kw == "USER"]
    pod = load_manifest("deployment.yaml")["spec"]["template"]["spec"]
    assert users[-1] == str(pod["securityContext"]["runAsUser"]) == str(APP_UID)


def test_dockerignore_keeps_local_state_out():
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()}
    for name in (*DEV_ONLY, "bench", "**/__pycache__", ".pytest_cache", ".ruff_cache", "backups"):
        assert name in ignored, name
    for name in (*RUNTIME_FILES, "requirements.txt"):
        assert name not in ignored, name


def test_every_local_import_is_copied_into_the_image():
    """A new top-level package that the Dockerfile forgets would crash the pod at import."""
    copied = {
        source
        for kw, args in dockerfile_instructions(DOCKERFILE.read_text())
        if kw == "COPY"
        for source in copy_sources(args)
    }
    local = {
        path.stem if path.suffix == ".py" else path.name
        for path in REPO.iterdir()
        if (path.suffix == ".py" or (path / "__init__.py").exists()) and path.name != "tests"
    }
    shipped = [REPO / name for name in copied if (REPO / name).exists()]
    files = [p for path in shipped for p in ([path] if path.is_file() else path.rglob("*.py")) if p.suffix == ".py"]
    imported: set[str] = set()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    needed = imported & local
    assert needed, "no local imports found: the scan is broken"
    missing = {name for name in needed if name not in copied and f"{name}.py" not in copied}
    assert not missing, f"imported by the image but not copied: {sorted(missing)}"


def test_entrypoint_is_executable():
    assert (REPO / "entrypoint.sh").stat().st_mode & 0o111


# --------------------------------------------------------------------------- the policy can fail


def _pod(manifest):
    return manifest["spec"]["template"]["spec"]


def _container(manifest):
    return _pod(manifest)["containers"][0]


def _containers(document: Any) -> list[dict[str, Any]]:
    """Every container of a manifest, however deep its pod template (Deployment, Job, CronJob)."""
    if isinstance(document, list):
        return [container for item in document for container in _containers(item)]
    if not isinstance(document, dict):
        return []
    here = document.get("containers") if isinstance(document.get("containers"), list) else []
    return here + [container for value in document.values() for container in _containers(value)]


DEPLOYMENT_MUTATIONS = {
    "runAsNonRoot": lambda d: _pod(d)["securityContext"].pop("runAsNonRoot"),
    "runAsUser must be 10001": lambda d: _pod(d)["securityContext"].update(runAsUser=0),
    "seccompProfile": lambda d: _pod(d)["securityContext"].pop("seccompProfile"),
    "automountServiceAccountToken": lambda d: _pod(d).pop("automountServiceAccountToken"),
    "allowPrivilegeEscalation": lambda d: _container(d)["securityContext"].update(allowPrivilegeEscalation=True),
    "readOnlyRootFilesystem": lambda d: _container(d)["securityContext"].update(readOnlyRootFilesystem=False),
    "capabilities must drop ALL": lambda d: _container(d)["securityContext"].pop("capabilities"),
    "resources.limits.memory": lambda d: _container(d)["resources"]["limits"].pop("memory"),
    "resources.requests.cpu": lambda d: _container(d)["resources"]["requests"].pop("cpu"),
    "livenessProbe must GET /healthz": lambda d: _container(d)["livenessProbe"]["httpGet"].update(path="/readyz"),
    "readinessProbe must GET /readyz": lambda d: _container(d)["readinessProbe"]["httpGet"].update(path="/healthz"),
    "startupProbe must GET /readyz": lambda d: _container(d).pop("startupProbe"),
    "must target port": lambda d: _container(d)["readinessProbe"]["httpGet"].update(port=9000),
    "maxUnavailable 0": lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable=1),
    "DATABASE_URL must come from a secretKeyRef": lambda d: _container(d)["env"].__setitem__(
        0, {"name": "DATABASE_URL", "value": "postgresql://app:hunter2@db:5432/weather"}
    ),
    "envFrom secretRef": lambda d: _container(d)["envFrom"].append({"secretRef": {"name": "weather-backend-secrets"}}),
    "/tmp must be an emptyDir": lambda d: _container(d).pop("volumeMounts"),
}


@pytest.mark.parametrize("expected", DEPLOYMENT_MUTATIONS)
def test_deployment_policy_reports_each_violation(expected):
    deployment = copy.deepcopy(load_manifest("deployment.yaml"))
    DEPLOYMENT_MUTATIONS[expected](deployment)
    problems = deployment_violations(deployment)
    assert any(expected in problem for problem in problems), problems


DOCKERFILE_MUTATIONS = {
    "no USER": lambda text: text.replace("USER 10001", ""),
    "numeric non-root UID": lambda text: text.replace("USER 10001", "USER root"),
    "ENTRYPOINT must be": lambda text: text.replace('ENTRYPOINT ["./entrypoint.sh"]', "ENTRYPOINT ./entrypoint.sh"),
    "code is copied before requirements.txt is installed": lambda text: text.replace(
        "COPY requirements.txt ./", "COPY requirements.txt ./\nCOPY app.py ./"
    ),
    "migrations is not copied": lambda text: text.replace("COPY migrations/ migrations/", ""),
    "COPY . brings development files": lambda text: text.replace("COPY weather/ weather/", "COPY . ."),
    "not pinned by tag": lambda text: re.sub(r"^FROM \S+", "FROM python:latest", text, flags=re.M),
    "--no-cache-dir": lambda text: text.replace("pip install --no-cache-dir", "pip install"),
    "BACKUP_DIR": lambda text: text.replace("BACKUP_DIR=/tmp/backups", "BACKUP_DIR=/app/backups"),
}


@pytest.mark.parametrize("expected", DOCKERFILE_MUTATIONS)
def test_dockerfile_policy_reports_each_violation(expected):
    original = DOCKERFILE.read_text()
    mutated = DOCKERFILE_MUTATIONS[expected](original)
    assert mutated != original, "the mutation no longer applies: update it with the Dockerfile"
    problems = dockerfile_violations(mutated)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("API_TOKEN", "abc123", "looks secret"),
        ("DB_PASSWORD", "x", "looks secret"),
        ("MIGRATION_DATABASE_URL", "postgresql://HOST/DBNAME", "looks secret"),
        ("REPORT_URL", "postgresql://weather:hunter2@db:5432/weather", "URL with a password"),
    ],
)
def test_configmap_policy_reports_secrets(key, value, expected):
    configmap = copy.deepcopy(load_manifest("configmap.yaml"))
    configmap["data"][key] = value
    problems = configmap_violations(configmap)
    assert any(expected in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DATABASE_URL", "postgresql://weather:s3cr3tPass@db.internal:5432/weather"),
        ("DATABASE_URL", "postgresql://USER:Tr0ub4dor&3@HOST:5432/DBNAME"),
        ("API_TOKEN", "9f86d081884c7d659a2feaa0c55ad015"),
        ("API_TOKEN", "change-me-later-2024"),
        ("API_TOKEN", "HUNTER2"),
        ("DATABASE_URL", "postgresql://USER:HUNTER2@HOST:5432/DBNAME"),
        ("DATABASE_URL", "postgresql://USER:PASSWORD@db.prod.example:5432/DBNAME"),
    ],
)
def test_secret_example_policy_rejects_real_looking_values(key, value):
    secret = copy.deepcopy(load_manifest("secret.example.yaml"))
    secret["stringData"][key] = value
    problems = secret_example_violations(secret)
    assert any(key in problem for problem in problems), problems


# --------------------------------------------------------------------------- the image's files, started


def test_image_files_start_with_the_pod_configuration(tmp_path, pg_url):
    """Stage exactly what the Dockerfile copies, then start it as the pod does.

    Proves the image holds everything start-up needs (migrations included), that
    the ConfigMap's values are accepted, and that nothing is written outside
    /tmp (here: tmp_path), as a read-only root filesystem demands.
    """
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    for kw, args in dockerfile_instructions(DOCKERFILE.read_text()):
        if kw != "COPY":
            continue
        for source in copy_sources(args):
            origin = REPO / source
            if origin.is_dir():
                shutil.copytree(origin, app_dir / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(origin, app_dir / source)
    before = sorted(str(path.relative_to(app_dir)) for path in app_dir.rglob("*"))
    writable = tmp_path / "tmp"
    writable.mkdir()
    port = free_port()
    env = child_env(pg_url, **load_manifest("configmap.yaml")["data"])
    env.update(
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONUNBUFFERED="1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        API_TOKEN="CHANGE-ME",
        HOME=str(writable),
        TMPDIR=str(writable),
        BACKUP_DIR=str(writable / "backups"),
    )
    process = subprocess.Popen(
        ["./entrypoint.sh"],
        cwd=app_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        ready = wait_for_http(f"http://127.0.0.1:{port}/readyz", process, timeout=60).json()
        assert ready["status"] == "ready"
        assert wait_for_http(f"http://127.0.0.1:{port}/healthz", process).json() == {"status": "ok"}
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "database migration" in output and "Traceback" not in output, output
    after = sorted(str(path.relative_to(app_dir)) for path in app_dir.rglob("*"))
    assert after == before, f"written outside /tmp: {sorted(set(after) - set(before))}"
