"""The fetch CronJobs (k8s/forecast-fetch-cronjob.yaml: short-term; k8s/forecast-fetch-ultra-cronjob.yaml:
ultra-short-term): when each runs, what it runs, and the Deployment's safety settings.

kubernetes-validate --strict checks it with every other manifest (tests/test_deploy_files.py).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.test_deploy_files import SECRET_LOOKING_KEY, load_manifest
from weather.config import load_config
from weather.sources import short, ultra

# product -> (manifest, the hours its base times are issued, their minute, when served, hours between runs)
CRONJOBS = {
    "short": ("forecast-fetch-cronjob.yaml", short.BASE_HOURS, 0, short.AVAILABLE_AFTER, 3),
    "ultra": ("forecast-fetch-ultra-cronjob.yaml", tuple(range(24)), ultra.BASE_MINUTE, ultra.AVAILABLE_AFTER, 1),
}


def pod_of(cronjob: dict[str, Any]) -> dict[str, Any]:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def cronjob_violations(cronjob: dict[str, Any], product: str = "short") -> list[str]:
    """What the fetch CronJob of ``product`` must be; an empty list means it is."""
    _, base_hours, base_minute, available_after, interval = CRONJOBS[product]
    problems = []
    spec = cronjob["spec"]
    minute, hours, *rest = spec["schedule"].split()
    if spec.get("timeZone") != "Asia/Seoul":
        problems.append("timeZone must be Asia/Seoul (KMA's base times are KST)")
    start, _, step = hours.partition("/")
    first = 0 if start == "*" else int(start.split("-")[0])
    runs = list(range(first, 24, int(step or (1 if start == "*" else 24))))
    if runs != list(base_hours) or rest != ["*", "*", "*"]:
        problems.append(f"must run at every base time {base_hours}, not {hours}")
    if (int(minute) - base_minute) * 60 <= available_after.total_seconds():
        problems.append("must run after the base time's data is available")
    if spec.get("concurrencyPolicy") != "Forbid":
        problems.append("concurrencyPolicy must be Forbid")
    if not spec.get("startingDeadlineSeconds"):
        problems.append("startingDeadlineSeconds missing")
    job = spec["jobTemplate"]["spec"]
    if not 0 < job.get("activeDeadlineSeconds", 0) < interval * 3600:
        problems.append("activeDeadlineSeconds must end a run before the next one")
    pod = pod_of(cronjob)
    deployment = load_manifest("deployment.yaml")["spec"]["template"]["spec"]
    if pod.get("securityContext") != deployment["securityContext"]:
        problems.append("pod securityContext differs from the Deployment's")
    if pod.get("automountServiceAccountToken") is not False:
        problems.append("automountServiceAccountToken must be false")
    (container,) = pod["containers"]
    if container.get("securityContext") != deployment["containers"][0]["securityContext"]:
        problems.append("container securityContext differs from the Deployment's")
    product_args = [] if product == "short" else ["--product", product]
    if container.get("command") != ["flask", "forecasts", "fetch", *product_args]:
        problems.append("must run flask forecasts fetch (not the entrypoint, which would serve)")
    env = {item["name"]: item for item in container.get("env", [])}
    for name in ("DATABASE_URL", "KMA_SERVICE_KEY"):
        if "secretKeyRef" not in (env.get(name, {}).get("valueFrom") or {}):
            problems.append(f"{name} must come from the Secret")
    for name, item in env.items():
        if SECRET_LOOKING_KEY.search(name) and "secretKeyRef" not in (item.get("valueFrom") or {}):
            problems.append(f"{name} must come from a secretKeyRef")
    return problems


@pytest.mark.parametrize("product", CRONJOBS)
def test_the_fetch_cronjobs_follow_the_policy(product):
    assert cronjob_violations(load_manifest(CRONJOBS[product][0]), product) == []


def test_the_ultra_cronjob_runs_at_fifty_past_every_hour():
    assert load_manifest("forecast-fetch-ultra-cronjob.yaml")["spec"]["schedule"] == "50 * * * *"
    ultra_cronjob = copy.deepcopy(load_manifest("forecast-fetch-ultra-cronjob.yaml"))
    ultra_cronjob["spec"]["schedule"] = "40 * * * *"  # 10 minutes after HH:30: not served yet
    assert any("after the base time's data" in problem for problem in cronjob_violations(ultra_cronjob, "ultra"))


MUTATIONS = {
    "timeZone": lambda c: c["spec"].pop("timeZone"),
    "every base time": lambda c: c["spec"].update(schedule="15 */3 * * *"),
    "after the base time's data": lambda c: c["spec"].update(schedule="5 2-23/3 * * *"),
    "Forbid": lambda c: c["spec"].update(concurrencyPolicy="Allow"),
    "startingDeadlineSeconds": lambda c: c["spec"].pop("startingDeadlineSeconds"),
    "pod securityContext": lambda c: pod_of(c)["securityContext"].update(runAsUser=0),
    "container securityContext": lambda c: pod_of(c)["containers"][0]["securityContext"].pop("readOnlyRootFilesystem"),
    "flask forecasts fetch": lambda c: pod_of(c)["containers"][0].pop("command"),
    "KMA_SERVICE_KEY must come from the Secret": lambda c: pod_of(c)["containers"][0]["env"].__setitem__(
        1, {"name": "KMA_SERVICE_KEY", "value": "abc"}
    ),
}


@pytest.mark.parametrize("expected", MUTATIONS)
def test_the_policy_reports_each_violation(expected):
    cronjob = copy.deepcopy(load_manifest("forecast-fetch-cronjob.yaml"))
    MUTATIONS[expected](cronjob)
    assert any(expected in problem for problem in cronjob_violations(cronjob))


def test_the_configmap_kma_settings_are_accepted_and_the_secret_shows_the_key():
    data = load_manifest("configmap.yaml")["data"]
    config = load_config({**data, "DATABASE_URL": "postgresql://USER:PASSWORD@HOST:5432/DBNAME"}, "instance")
    assert config["KMA_BASE_URL"].endswith("/VilageFcstInfoService_2.0") and config["KMA_CONCURRENCY"] >= 1
    assert "KMA_SERVICE_KEY" not in data
    assert "KMA_SERVICE_KEY" in load_manifest("secret.example.yaml")["stringData"]
