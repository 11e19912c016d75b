"""docker-compose.yml, checked statically (no Docker engine runs here or in CI): valid against
the Compose Specification's schema and accepted by Docker Compose's own `config`; every file it
references exists; images pinned; no secret in the file; the conventions of
docs/observability.md (KRaft single node, healthchecks, service_healthy, 127.0.0.1, read-only
config, named volumes, the same `appraise` commands as the embedded run)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stream.ops.configs import write_stack_configs
from stream.ops.profiles import PROFILES
from tests.tools import COMPOSE_FILE, ROOT, alert_rules, load_yaml

SCHEMA = Path(__file__).with_name("compose_spec.json")
SCHEMA_SHA256 = "e4e1a42ce687c47e199551d1f025b1e713a4d1f9302706d3f89de9cef1d376a4"
COMPOSE: dict[str, Any] = load_yaml(COMPOSE_FILE)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: Services that run once and exit (dependants wait for service_completed_successfully).
ONE_SHOT = {"topics", "train", "monitoring-config"}
#: Services that send traffic until stopped, each switched on by its own profile (no healthcheck:
#: nothing waits for them).
GENERATORS = {"producer", "request-generator"}
#: The project's own services and the `appraise` command each runs (as `appraise up` does).
APPRAISE_COMMANDS = {
    "scorer": ["appraise", "score"],
    "aggregate": ["appraise", "aggregate"],
    "api": ["appraise", "serve"],
    "history": ["appraise", "history"],
    "producer": ["appraise", "produce"],
    "request-generator": ["appraise", "produce"],
    "monitoring-config": ["appraise", "monitoring-config"],
}


def test_vendored_schema_is_the_recorded_one() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256


def test_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(COMPOSE), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_mistake() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = {**COMPOSE, "services": {**SERVICES, "scorer": {**SERVICES["scorer"], "prots": []}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_every_referenced_file_exists() -> None:
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
        build = service.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    assert (ROOT / ".dockerignore").is_file()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository, f"{name}: {image} has no tag"
    assert "/" not in tag, f"{name}: {image} has no tag"
    assert tag not in {"latest", "main", "master", "edge", "nightly"}, f"{name}: {image}"
    assert re.search(r"\d", tag), f"{name}: {image}: pin a version"


def test_dockerfile_base_images_are_pinned() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            image = line.split()[1]
            assert re.search(r":\d[\w.-]*", image), line
            assert "latest" not in image, line


_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api_?key|private_?key|credential)")


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def test_no_secret_in_the_file() -> None:
    for name, service in SERVICES.items():
        for key, value in _environment(service).items():
            if _SECRET_KEY.search(key) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", value), (
                    f"{name}: {key} must come from the environment with no default, "
                    "as ${VAR:?message}"
                )
    for value in _strings(COMPOSE):
        assert not re.search(r"hooks\.slack\.com|xox[abpr]-|-----BEGIN", value), value
        assert not re.search(r"(?i)(password|secret|token)=[^$\s]", value), value


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _strings(key) + _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def test_grafana_admin_password_has_no_default() -> None:
    env = _environment(SERVICES["grafana"])
    value = env.get("GF_SECURITY_ADMIN_PASSWORD") or env.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    assert value is not None
    assert ":-" not in value
    assert "-}" not in value


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_ports_are_bound_to_loopback(name: str) -> None:
    for port in SERVICES[name].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


@pytest.mark.parametrize("name", sorted(set(SERVICES) - ONE_SHOT - GENERATORS))
def test_long_running_service_has_a_healthcheck(name: str) -> None:
    check = SERVICES[name].get("healthcheck")
    assert check, f"{name}: no healthcheck"
    assert check["test"], f"{name}: empty healthcheck"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_wait_for_health_or_completion(name: str) -> None:
    for dependency, condition in SERVICES[name].get("depends_on", {}).items():
        expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
        assert condition["condition"] == expected, f"{name} -> {dependency}"
        assert dependency in SERVICES


def test_config_is_mounted_read_only_and_data_in_named_volumes() -> None:
    named = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for mount in service.get("volumes", []):
            source, _target, *mode = mount.split(":")
            if source.startswith("."):
                assert mode == ["ro"], f"{name}: {mount} must be read-only"
            else:
                assert source in named, f"{name}: {source} is not a declared named volume"


def test_kafka_is_a_single_kraft_node_with_replication_factor_1() -> None:
    env = _environment(SERVICES["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in (
        "KAFKA_NODE_ID",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
    ):
        assert env.get(key), key
    factors = {key: value for key, value in env.items() if "REPLICATION_FACTOR" in key}
    assert "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR" in factors
    assert set(factors.values()) == {"1"}, factors
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    # The api-versions tool exits 0 on errors: the healthcheck reads its output.
    check = " ".join(SERVICES["kafka"]["healthcheck"]["test"])
    assert "kafka-broker-api-versions.sh" in check
    assert "ERROR" in check


def test_topic_creation_step_creates_the_project_topics() -> None:
    from stream.settings import TopicSettings

    command = " ".join(SERVICES["topics"]["command"])
    for topic in TopicSettings().all():
        assert topic in command, topic
    assert "--if-not-exists" in command


@pytest.mark.parametrize("name", sorted(APPRAISE_COMMANDS))
def test_project_services_run_the_appraise_command(name: str) -> None:
    service = SERVICES[name]
    assert service["command"][:2] == APPRAISE_COMMANDS[name]
    assert service["image"] == SERVICES["scorer"]["image"]


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generators_can_be_switched_off(name: str) -> None:
    assert SERVICES[name]["profiles"] == [name]


def test_the_request_generator_sends_live_listings_to_the_api_once_it_is_ready() -> None:
    generator = SERVICES["request-generator"]
    command = generator["command"]
    assert command[command.index("--http") + 1] == "http://api:8000"
    assert command[command.index("--event-time") + 1] == "live"
    assert "--loop" in command
    assert command[command.index("--rate") + 1] == "20"
    assert command[command.index("--concurrency") + 1] == "8"
    assert generator["depends_on"] == {"api": {"condition": "service_healthy"}}


def test_the_api_listens_beyond_loopback_on_its_port_and_waits_for_the_model() -> None:
    from stream.settings import load_settings

    api = SERVICES["api"]
    env = _environment(api)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("APPRAISE_")}
    try:
        os.environ.update(env)
        settings = load_settings()
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)
    assert settings.serve.host == "0.0.0.0"  # noqa: S104 - inside a container, on purpose
    port = settings.serve.port
    assert api["ports"] == [f"127.0.0.1:{port}:{port}"]
    check = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check
    # The image has python, not curl or wget: the check is urllib's, which fails on a 503.
    assert api["healthcheck"]["test"][:2] == ["CMD", "python"]
    assert api["depends_on"]["train"] == {"condition": "service_completed_successfully"}
    assert api["volumes"] == SERVICES["scorer"]["volumes"]
    assert env["APPRAISE_MODEL_DIR"] == "/models/current"


def test_every_appraise_scrape_target_is_a_compose_service_on_its_port() -> None:
    prometheus = load_yaml(ROOT / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    # Every long-running project service is scraped, the history sink included.
    assert {"appraise-scorer", "appraise-aggregate", "appraise-api", "appraise-history"} <= jobs
    for job in prometheus["scrape_configs"]:
        if job["job_name"] in ("appraise-scorer", "prometheus", "alertmanager"):
            continue  # the scorers are found by DNS (below)
        (static,) = job["static_configs"]
        for target in static["targets"]:
            host, _, port = target.partition(":")
            assert host in SERVICES, f"{job['job_name']}: {target} is no compose service"
            published = [str(p).rsplit(":", 1)[-1] for p in SERVICES[host].get("ports", [])]
            assert port in published, f"{job['job_name']}: {host} does not listen on {port}"


# --- scaling the scorer ------------------------------------------------------------------------


def test_the_scorer_scales_no_fixed_host_port_and_no_container_name() -> None:
    # `docker compose up --scale scorer=3` refuses a published host port or a container_name.
    scorer = SERVICES["scorer"]
    assert "ports" not in scorer
    assert "container_name" not in scorer
    check = " ".join(scorer["healthcheck"]["test"])
    assert "http://127.0.0.1:9400/readyz" in check  # inside the container: every replica's own


def test_prometheus_discovers_every_scorer_replica_by_dns() -> None:
    from stream.settings import MetricsSettings

    prometheus = load_yaml(ROOT / "prometheus" / "prometheus.yml")
    (job,) = [j for j in prometheus["scrape_configs"] if j["job_name"] == "appraise-scorer"]
    assert "static_configs" not in job
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == ["scorer"]
    assert dns["names"][0] in SERVICES
    assert dns["type"] == "A"
    assert dns["port"] == MetricsSettings().scorer_port == 9400


def test_one_partition_count_for_the_topics_job_and_the_apps() -> None:
    shared = COMPOSE["x-appraise"]["environment"]
    assert shared["APPRAISE_TOPICS__PARTITIONS"] == "4"
    topics = SERVICES["topics"]
    assert _environment(topics)["APPRAISE_TOPICS__PARTITIONS"] == "4"
    command = " ".join(topics["command"])
    # Every --partitions of the job reads the setting ($$ is compose's escape of a literal $).
    counts = re.findall(r"--partitions (\S+)", command)
    assert counts
    assert set(counts) == {'"$${APPRAISE_TOPICS__PARTITIONS}"'}
    for name in ("scorer", "aggregate", "api", "history"):
        assert _environment(SERVICES[name])["APPRAISE_TOPICS__PARTITIONS"] == "4", name
    assert _settings_of(_environment(SERVICES["scorer"])).topics.partitions == 4


# --- the history sink and its database ------------------------------------------------------

#: The compose secret holding the database password, and where it is mounted.
SECRET_NAME = "postgres_password"  # noqa: S105 - the secret's name, not its value
PASSWORD_FILE = f"/run/secrets/{SECRET_NAME}"


def _settings_of(env: dict[str, str], **replaced: str) -> Any:
    """The project settings a container with ``env`` reads (``replaced`` overrides values)."""
    from stream.settings import load_settings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("APPRAISE_")}
    try:
        os.environ.update({**env, **replaced})
        return load_settings()
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)


def test_the_database_password_is_a_file_the_user_creates_and_git_ignores() -> None:
    secrets = COMPOSE["secrets"]
    assert secrets == {SECRET_NAME: {"file": "./secrets/postgres_password"}}
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/secrets/" in ignored or "secrets/" in ignored
    # The file's header says how to create it.
    header = COMPOSE_FILE.read_text().split("\nname:", 1)[0]
    assert "openssl rand -hex 32 > secrets/postgres_password" in header


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_secret_a_service_mounts_is_declared(name: str) -> None:
    for secret in SERVICES[name].get("secrets", []):
        assert isinstance(secret, str), f"{name}: mount {secret} at /run/secrets/<name>"
        assert secret in COMPOSE["secrets"], f"{name}: {secret} is not a declared secret"


def test_postgres_takes_its_password_from_the_secret_and_keeps_its_data() -> None:
    postgres = SERVICES["postgres"]
    repository, _, tag = postgres["image"].rpartition(":")
    assert repository == "postgres"  # the official image
    assert tag.split(".")[0] in {"16", "17"}, postgres["image"]
    env = _environment(postgres)
    assert env == {
        "POSTGRES_USER": "appraise",
        "POSTGRES_DB": "appraise",
        "POSTGRES_PASSWORD_FILE": PASSWORD_FILE,
    }
    assert postgres["secrets"] == [SECRET_NAME]
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "ports" not in postgres  # reached on the compose network only
    check = postgres["healthcheck"]["test"]
    assert check[:2] == ["CMD", "pg_isready"]
    # Over TCP, so the image's socket-only server of the first initialisation does not pass.
    assert "--host=127.0.0.1" in check
    assert "--username=appraise" in check


def test_the_history_sink_reads_the_database_and_the_password_from_the_secret(
    tmp_path: Path,
) -> None:
    from psycopg.conninfo import conninfo_to_dict

    history = SERVICES["history"]
    env = _environment(history)
    assert env["APPRAISE_HISTORY__PASSWORD_FILE"] == PASSWORD_FILE
    assert "APPRAISE_HISTORY__PASSWORD" not in env
    assert history["secrets"] == [SECRET_NAME]
    assert SERVICES["grafana"]["secrets"] == [SECRET_NAME]  # its PostgreSQL datasource
    # The DSN names the compose service, its port, user and database, and no password.
    dsn = conninfo_to_dict(env["APPRAISE_HISTORY__DSN"])
    postgres = _environment(SERVICES["postgres"])
    assert dsn == {
        "host": "postgres",
        "port": "5432",
        "dbname": postgres["POSTGRES_DB"],
        "user": postgres["POSTGRES_USER"],
    }
    assert history["depends_on"] == {
        "topics": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
    }
    # Settings it starts with (the secret replaced by a file here: it exists only in compose).
    secret = tmp_path / "postgres_password"
    secret.write_text("not-the-real-one\n")
    settings = _settings_of(env, APPRAISE_HISTORY__PASSWORD_FILE=str(secret))
    assert settings.history.where() == "postgres:5432/appraise"
    assert settings.history.secret().get_secret_value() == "not-the-real-one"
    assert settings.metrics.host == "0.0.0.0"  # noqa: S104 - inside a container, on purpose
    port = settings.metrics.history_port
    assert port == 9402
    assert history["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert history["healthcheck"]["test"][:2] == ["CMD", "python"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(history["healthcheck"]["test"])


def test_the_database_password_is_never_in_the_environment() -> None:
    # Not even as ${VAR:?...}, which test_no_secret_in_the_file allows: the secret's file only.
    found = []
    for name, service in SERVICES.items():
        for key, value in _environment(service).items():
            if re.search(r"POSTGRES_PASSWORD|HISTORY__PASSWORD|PGPASSWORD", key):
                assert key.endswith("_FILE"), f"{name}: {key} must name a file, not a password"
                assert value == PASSWORD_FILE, f"{name}: {key}={value}"
                found.append(name)
    assert sorted(found) == ["history", "postgres"]


def test_model_is_trained_only_when_missing() -> None:
    from stream.model.card import CARD_FILE

    command = " ".join(SERVICES["train"]["command"])
    assert "appraise train" in command
    assert f"/models/current/{CARD_FILE}" in command
    env = _environment(SERVICES["scorer"])
    assert env["APPRAISE_MODEL_DIR"] == "/models/current"


def test_the_appraise_environment_is_known_to_the_settings() -> None:
    # A typo in an APPRAISE_ variable would stop every service at start-up.
    from stream.settings import load_settings

    env = _environment(SERVICES["scorer"])
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("APPRAISE_")}
    try:
        os.environ.update(env)
        settings = load_settings()
    finally:
        for key in env:
            os.environ.pop(key, None)
        os.environ.update(saved)
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.metrics.host == "0.0.0.0"  # noqa: S104 - inside a container, on purpose


def test_prometheus_and_alertmanager_read_the_generated_configs(tmp_path: Path) -> None:
    writer = SERVICES["monitoring-config"]
    assert "monitoring:/monitoring" in writer["volumes"]
    assert writer["command"][-2:] == ["--out", "/monitoring"]
    assert "APPRAISE_MONITORING__RUNBOOK_URL" in writer["environment"]
    assert "monitoring:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    assert "monitoring:/etc/alertmanager:ro" in SERVICES["alertmanager"]["volumes"]
    for reader in ("prometheus", "alertmanager"):
        needs = SERVICES[reader]["depends_on"]["monitoring-config"]
        assert needs == {"condition": "service_completed_successfully"}
    # What the job writes: the repository's files, its targets, runbook links made absolute.
    files = write_stack_configs(tmp_path, PROFILES["default"], runbook_url="https://x.test/RB.md")
    prometheus = load_yaml(files.prometheus)
    assert prometheus["rule_files"] == ["rules/*.yml"]
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in prometheus["scrape_configs"]
        if "static_configs" in job
    }
    assert [j for j in prometheus["scrape_configs"] if j["job_name"] == "appraise-scorer"] == [
        {
            "job_name": "appraise-scorer",
            "dns_sd_configs": [
                {"names": ["scorer"], "type": "A", "port": 9400, "refresh_interval": "15s"}
            ],
        }
    ]
    assert targets["appraise-aggregate"] == ["aggregate:9401"]
    assert targets["appraise-api"] == ["api:8000"]
    assert targets["appraise-history"] == ["history:9402"]
    assert files.alertmanager.read_text() == (ROOT / "prometheus" / "alertmanager.yml").read_text()
    for rule in alert_rules():
        written = [
            r
            for path in files.rules_dir.glob("*.yml")
            for group in load_yaml(path)["groups"]
            for r in group["rules"]
            if r.get("alert") == rule["alert"]
        ]
        (link,) = [r["annotations"]["runbook_url"] for r in written]
        assert link == "https://x.test/RB.md" + rule["annotations"]["runbook_url"].removeprefix(
            "RUNBOOK.md"
        )


def test_the_image_gets_what_the_package_links_to() -> None:
    # stream/ops/monitoring and stream/ops/RUNBOOK.md link to these: a build without them would
    # ship a package whose `appraise up` and `appraise monitoring-config` find no rules.
    copied = [
        line.split()[1:-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    sources = {source for sources in copied for source in sources}
    assert {"RUNBOOK.md", "prometheus"} <= sources
    for link in ("monitoring", "RUNBOOK.md"):
        target = (ROOT / "stream" / "ops" / link).readlink()
        assert target.parts[:2] == ("..", "..")
        assert target.parts[2] in sources
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "prometheus" not in ignored
    assert "RUNBOOK.md" not in ignored
