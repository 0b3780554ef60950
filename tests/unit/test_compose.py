"""docker-compose.yaml parses, names every service, and passes every variable the code reads.

The variable list is derived from include.settings (the pydantic-settings models and their env
prefixes), so adding a setting without adding it to the compose file fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from devstack.compose_env import CORE
from include.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# The long-running services the compose check waits for, and the one-shot airflow-init.
SERVICES = {*CORE, "airflow-init"}
AIRFLOW_SERVICES = sorted(s for s in SERVICES if s.startswith("airflow-"))
# Services that run our code and therefore read the settings.
APP_SERVICES = [*AIRFLOW_SERVICES, "gateway", "sandbox"]
_REF = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+)(?::-(?P<default>.*))?\}$")


def settings_fields(model: type[BaseSettings] = Settings, prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """(ENV_NAME, field) for every leaf setting, following nested settings and their env_prefix."""
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseSettings):
            yield from settings_fields(ann, str(ann.model_config.get("env_prefix", "")))
        else:
            yield (prefix + name).upper(), field


SETTINGS = dict(settings_fields())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def env_of(compose: dict[str, Any], service: str) -> dict[str, str]:
    env = compose["services"][service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment must be a mapping"
    return {k: str(v) for k, v in env.items()}


def test_settings_walk_finds_nested_prefixes() -> None:
    # Guard the derivation itself: nested models contribute prefixed names, top-level ones bare.
    assert {
        "REDIS_URL",
        "ADVOWARE_BASE_URL",
        "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH",
        "POSTGRES_DB",
        "AIRFLOW_API_PASSWORD",
        "GATEWAY_API_TOKEN",
        "SANDBOX_MODE",
    } <= SETTINGS.keys()
    assert "ADVOWARE" not in SETTINGS and "BASE_URL" not in SETTINGS


def test_names_every_service(compose: dict[str, Any]) -> None:
    assert SERVICES <= set(compose["services"])
    assert compose["services"]["sandbox"].get("profiles") == ["sandbox"]
    assert not any(compose["services"][s].get("profiles") for s in SERVICES - {"sandbox"})


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_setting_reaches_every_app_service(compose: dict[str, Any], service: str) -> None:
    env = env_of(compose, service)
    missing = sorted(set(SETTINGS) - set(env))
    assert missing == [], f"{service} lacks {missing}"
    for name in SETTINGS:
        m = _REF.match(env[name])
        # Configurable from .env: the variable itself, or its COMPOSE_ in-network address override.
        assert m and m["name"] in (name, f"COMPOSE_{name}"), f"{service}: {name}={env[name]!r}"


def test_compose_defaults_equal_the_settings_defaults(compose: dict[str, Any]) -> None:
    env = env_of(compose, "gateway")
    for name, field in SETTINGS.items():
        m = _REF.match(env[name])
        assert m is not None
        if m["name"] != name:
            continue  # an in-network address, deliberately different from the laptop default
        parsed = TypeAdapter(field.annotation).validate_python(m["default"] or "")
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            parsed, default = parsed.get_secret_value(), default.get_secret_value()
        assert parsed == default, f"{name}: compose default {m['default']!r} != settings default {default!r}"


def test_env_example_names_only_real_settings_and_compose_names_them_all(compose: dict[str, Any]) -> None:
    keys = [
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert keys, ".env.example is not empty"
    assert sorted(set(keys) - set(SETTINGS)) == [], "variables in .env.example that no setting reads"
    assert sorted(set(keys) - set(env_of(compose, "gateway"))) == []


def test_redis_is_durable(compose: dict[str, Any]) -> None:
    cmd = compose["services"]["redis"]["command"]
    args = cmd if isinstance(cmd, list) else cmd.split()
    pairs = dict(zip(args[1::2], args[2::2], strict=False)) if args[0] == "redis-server" else {}
    assert pairs.get("--appendonly") == "yes"
    assert pairs.get("--appendfsync") == "always"


def test_airflow_components_share_secret_and_execution_api(compose: dict[str, Any]) -> None:
    commands = {}
    for service in AIRFLOW_SERVICES:
        env = env_of(compose, service)
        assert (
            env["AIRFLOW__API_AUTH__JWT_SECRET"]
            == env_of(compose, "airflow-apiserver")["AIRFLOW__API_AUTH__JWT_SECRET"]
        )
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "include.airflow_provider.executors.preload.PreloadingLocalExecutor"
        assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
        commands[service] = compose["services"][service].get("command")
    for service, sub in [
        ("airflow-apiserver", "api-server"),
        ("airflow-scheduler", "scheduler"),
        ("airflow-dag-processor", "dag-processor"),
        ("airflow-triggerer", "triggerer"),
    ]:
        # started through the operator CLI, which adds the connections and variables built from .env
        assert commands[service] == ["kanzlei-sync", "airflow", "exec", "airflow", sub]
    init = " ".join(commands["airflow-init"])
    assert "airflow db migrate" in init and "kanzlei-sync migrate" in init


def test_every_kanzlei_sync_call_in_compose_is_a_real_command(compose: dict[str, Any]) -> None:
    """A renamed subcommand would break the containers at start: each call must parse."""
    import shlex

    from include.cli import build_parser

    with open(ROOT / "docker-compose.celery.yaml") as fh:
        celery = yaml.safe_load(fh)
    calls = []
    for services in (compose["services"], celery["services"]):
        for body in services.values():
            command = body.get("command") or []
            text = command if isinstance(command, str) else " ".join(command)
            for part in text.split("&&"):
                words = shlex.split(part)
                if "kanzlei-sync" in words:
                    calls.append(words[words.index("kanzlei-sync") + 1 :])
    assert len(calls) >= 7  # init (2), four components, the Celery worker
    for argv in calls:
        build_parser().parse_args(argv)
    health = compose["services"]["airflow-apiserver"]["healthcheck"]["test"]
    assert "/api/v2/version" in " ".join(health)


def test_image_installs_the_pinned_requirements() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --progress-bar off --no-deps -r requirements.txt" in dockerfile  # exactly the freeze
    pinned = (ROOT / "requirements.txt").read_text()
    # the default base is the official image of the pinned Airflow
    version = re.search(r"^ARG BASE_IMAGE=apache/airflow:(\S+)-python3\.11$", dockerfile, re.M)
    assert version and f"apache-airflow=={version[1]}\n" in pinned


# -- the CeleryExecutor layer (docker-compose.celery.yaml over docker-compose.yaml) -----------------
def _merged(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services as `docker compose -f base -f layer` sees them: mappings merged, `extends` resolved."""
    services = {name: dict(svc) for name, svc in base["services"].items()}
    for name, svc in layer["services"].items():
        merged = dict(services.get(name, {}))
        if "extends" in svc:
            merged = dict(base["services"][svc["extends"]["service"]])
        for key, value in svc.items():
            if key == "environment":
                merged[key] = {**merged.get(key, {}), **value}
            elif key != "extends":
                merged[key] = value
        services[name] = merged
    return services


@pytest.fixture(scope="module")
def celery_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    layer = yaml.safe_load((ROOT / "docker-compose.celery.yaml").read_text())
    assert layer["services"]["airflow-worker"]["extends"]["file"] == "docker-compose.yaml"
    return _merged(compose, layer)


def test_celery_layer_switches_every_component_and_adds_scalable_workers(
    celery_services: dict[str, dict[str, Any]],
) -> None:
    for name in [*AIRFLOW_SERVICES, "airflow-worker"]:
        env = {k: str(v) for k, v in celery_services[name]["environment"].items()}
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        broker = _REF.match(env["AIRFLOW__CELERY__BROKER_URL"])
        # the broker has a Redis database of its own: never the work queue's
        assert broker and broker["default"] == "redis://redis:6379/1", name
        assert env["REDIS_URL"].endswith("redis://redis:6379/0}"), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://"), name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert (
            env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"]
            == "include.airflow_provider.executors.celery_config.CELERY_CONFIG"
        )
    worker = celery_services["airflow-worker"]
    assert worker["command"][-3:] == ["airflow", "celery", "worker"]
    assert worker["deploy"]["replicas"] >= 2 and worker["image"] == celery_services["airflow-scheduler"]["image"]
    assert {"postgres", "redis", "airflow-init"} <= set(worker["depends_on"])
    test = worker["healthcheck"]["test"]
    assert "inspect ping" in (test if isinstance(test, str) else " ".join(test))  # a string: see the scheduler


def test_the_celery_configuration_preloads_the_task_modules() -> None:
    from include.airflow_provider.executors.celery_config import CELERY_CONFIG
    from include.airflow_provider.executors.preload import TASK_MODULES

    assert set(TASK_MODULES) <= set(CELERY_CONFIG["imports"])
    assert CELERY_CONFIG["task_acks_late"] is True  # a task of a dead worker is delivered again


def test_the_image_holds_the_product_not_the_dev_tooling() -> None:
    """The image runs Airflow, the gateway and (profile `sandbox`) the sandboxes: the dev stack, the
    tests and the benches stay out of it, and the installed package does not ship the dev stack."""
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {"devstack", "tests", "bench", ".env", ".run"} <= ignored
    assert not {"include", "dags", "plugins", "webhook_gateway", "sandbox"} & ignored
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"\[tool\.setuptools\.packages\.find\]\s*include = \[(.*?)\]", pyproject, re.S)
    assert packages is not None and "devstack" not in packages.group(1)


def test_the_image_builds_from_a_base_named_by_an_argument() -> None:
    """One Dockerfile for the official image and a locally made base; what the compose relies on
    (user airflow 50000:0, AIRFLOW_HOME, the entry point) is made by the Dockerfile, not taken from the base."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    froms = [ln for ln in lines if ln.upper().startswith("FROM ")]
    assert froms == ["FROM ${BASE_IMAGE}"]
    assert lines.index("ARG BASE_IMAGE=apache/airflow:3.3.2-python3.11") < lines.index(froms[0])
    assert "useradd --uid 50000 --gid 0" in text
    assert re.search(r"^ENV AIRFLOW_HOME=/opt/airflow\b", text, re.M)
    assert 'ENTRYPOINT ["dumb-init", "--"]' in lines


def test_the_firms_compose_files_name_only_official_images(compose: dict[str, Any]) -> None:
    # The compose check's PostgreSQL and Redis come in through an override file of its own.
    assert compose["services"]["postgres"]["image"] == "postgres:16"
    assert compose["services"]["redis"]["image"].startswith("redis:7")
    for name in ("docker-compose.yaml", "docker-compose.celery.yaml"):
        assert "localhost/" not in (ROOT / name).read_text()


def test_long_running_services_restart_and_have_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, body in compose["services"].items():
        if name == "airflow-init":
            assert "restart" not in body  # runs once per start
            continue
        assert body.get("restart") == "unless-stopped", name
        assert body.get("healthcheck", {}).get("test"), name


def test_airflow_init_waits_for_postgres_and_makes_the_pools(compose: dict[str, Any]) -> None:
    script = compose["services"]["airflow-init"]["command"][-1]
    steps = [s.strip() for s in script.split("&&")]
    assert steps[0].startswith("airflow db check --retry")
    assert "kanzlei-sync airflow pools" in steps
