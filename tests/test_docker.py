"""No Docker engine runs here: check the compose file and Dockerfile against the code instead."""

import re
from pathlib import Path

import yaml

from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _dockerfile_targets(path: Path) -> dict[str, list[str]]:
    """Stage name -> its lines."""
    stages: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


def test_every_service_of_the_card_is_in_compose_with_its_dependencies() -> None:
    services = _compose()["services"]
    for name in (*SERVICES, "postgres", "s3", "migrate"):
        assert name in services, name
    # SeaweedFS (what the tests run) makes the services' bucket on start, and the services wait for it.
    assert services["s3"]["command"][0] == "mini" and "-bucket=alpr" in services["s3"]["command"]
    for name in SERVICES:
        assert services[name]["depends_on"]["s3"]["condition"] == "service_healthy"
    # The agents' importer: ingest's image and spool, and ingest told to leave the import to it.
    importer, ingest = services["ingest-agents"], services["ingest"]
    assert importer["command"] == ["python", "-m", "services.ingest.agents"]
    assert importer["build"] == ingest["build"] and importer["volumes"] == ingest["volumes"]
    assert importer["environment"]["ALPR_DATABASE_URL"] == ingest["environment"]["ALPR_DATABASE_URL"]
    assert ingest["environment"]["ALPR_INGEST_AGENT_IMPORT_PROCESS"] == "true"


def test_env_names_and_ports_match_settings() -> None:
    fields = {f"ALPR_{name.upper()}" for name in Settings.model_fields}
    services = _compose()["services"]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in (*SERVICES, "migrate"):
        env = services[name]["environment"]
        unknown = set(env) - fields
        assert not unknown, f"{name}: {unknown} are not Settings fields"
        assert (
            env["ALPR_S3_BUCKET"] == "${ALPR_S3_BUCKET:-alpr}"
            and env["ALPR_S3_ENDPOINT"] == "${ALPR_S3_ENDPOINT:-s3:8333}"
        )
        assert env["ALPR_DATABASE_URL"].startswith("postgresql://")
        if name in SERVICES:
            port = defaults.port_of(name)
            assert env[f"ALPR_{name.upper()}_PORT"] == str(port)
            assert services[name]["ports"] == [f"${{PUBLISH_ADDRESS:-127.0.0.1}}:{port}:{port}"]
            for other in SERVICES:
                assert env[f"ALPR_{other.upper()}_URL"] == f"http://{other}:{defaults.port_of(other)}"
    assert "-bucket=alpr" in services["s3"]["command"]  # the bucket the S3 server makes is the one they use


def test_images_build_from_files_that_exist() -> None:
    services = _compose()["services"]
    for name in (*SERVICES, "migrate"):
        build = services[name]["build"]
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.is_file()
        stages = _dockerfile_targets(dockerfile)
        assert build["target"] in stages, f"no stage {build['target']} in {dockerfile}"
        for line in stages["base"]:
            if line.startswith("COPY"):
                for src in line.split()[1:-1]:
                    assert (ROOT / src).exists(), f"COPY source {src} missing"
        if name in SERVICES:
            body = "\n".join(stages[name])
            port = Settings(_env_file=None).port_of(name)  # type: ignore[call-arg]
            assert f"services.{name}.main:create_app" in body
            assert (ROOT / "services" / name / "main.py").is_file()
            assert f"EXPOSE {port}" in body and f'"{port}"' in body
            extra = re.search(r"pip install '\.\[(\w+)\]'", body)
            assert extra and extra.group(1) == name
    # The ingest image does not carry the OCR libraries.
    ingest = "\n".join(_dockerfile_targets(ROOT / "docker" / "Dockerfile")["ingest"])
    assert "recognition" not in ingest


def test_ingest_and_hotlist_each_get_their_own_service_client_a_bootstrap_job_creates() -> None:
    services = _compose()["services"]
    seen = set()
    for name, callers in (("ingest", ("ingest", "ingest-agents")), ("hotlist", ("hotlist",))):
        job = services[f"service-client-{name}"]
        assert job["command"][-4:] == ["access", "ensure-service-client", "--service", name]
        assert job["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        creds = {k: job["environment"][k] for k in ("ALPR_SERVICE_CLIENT_ID", "ALPR_SERVICE_CLIENT_SECRET")}
        assert all(creds.values())
        seen.add(creds["ALPR_SERVICE_CLIENT_ID"])
        for caller in callers:
            env = services[caller]["environment"]
            assert {k: env[k] for k in creds} == creds, caller
            assert (
                services[caller]["depends_on"][f"service-client-{name}"]["condition"]
                == "service_completed_successfully"
            )
    assert len(seen) == 2  # one identity per calling service, never shared
    for other in ("access", "recognition"):  # call nobody with a client-credentials token
        assert "ALPR_SERVICE_CLIENT_SECRET" not in services[other]["environment"], other


def test_each_service_connects_as_the_role_the_migrate_job_makes_for_it() -> None:
    import json
    from urllib.parse import urlsplit

    from alpr.roles import role_names

    services = _compose()["services"]
    passwords = json.loads(services["migrate"]["environment"]["ALPR_DB_ROLE_PASSWORDS"])
    admin = urlsplit(services["migrate"]["environment"]["ALPR_DATABASE_URL"])
    roles = role_names(admin.path.lstrip("/"))
    for name in SERVICES:
        url = urlsplit(services[name]["environment"]["ALPR_DATABASE_URL"])
        assert (url.username, url.password) == (roles[name], passwords[name]), name
        assert url.username != admin.username  # never the administrator the migrations use


def test_sample_alert_rules_parse_and_name_metrics_that_exist() -> None:
    import importlib

    from prometheus_client import REGISTRY

    for module in (
        "shared.metrics",
        "shared.supervision",
        "services.ingest.metrics",
        "services.recognition.metrics",
        "services.hotlist.metrics",
    ):
        importlib.import_module(module)
    # Every name a family can show, labelled children or not (a counter's _total, a histogram's series).
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    known = {f.name + suffix for f in REGISTRY.collect() for suffix in suffixes.get(f.type, ("",))}
    rules = yaml.safe_load((ROOT / "docker" / "prometheus-alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 8 and all({"alert", "expr", "annotations"} <= set(rule) for rule in alerts)
    named = {name for rule in alerts for name in re.findall(r"\balpr_[a-z_]+", rule["expr"])}
    assert named and named - known == set(), f"alert rules name unknown metrics: {named - known}"


def test_settings_come_from_an_env_file_and_every_image_is_pinned_by_version() -> None:
    services = _compose()["services"]
    example = ROOT / ".env.example"
    keys = {line.split("=", 1)[0] for line in example.read_text().splitlines() if line and not line.startswith("#")}
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for key in keys:  # every line of the example is a setting or a value the compose file reads
        assert key.startswith("ALPR_") or f"${{{key}" in compose_text, key
    for name, service in services.items():
        if "build" in service:  # ours: every ALPR_* line of .env reaches it
            assert service["env_file"] == [{"path": ".env", "required": False}], name
        else:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
            assert re.search(r":\d+\.\d+", image), f"{name}: {image} is pinned by a major version only"
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_ports_are_published_on_loopback_unless_the_operator_opts_in() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name}: {port} is published on every interface"


def test_volumes_are_writable_by_the_images_user() -> None:
    """A named volume starts as a copy of the image's folder: each path our images mount is made and given to the
    image's user before `USER` (else the service cannot write its keys or spool)."""
    stages = _dockerfile_targets(ROOT / "docker" / "Dockerfile")
    for name, service in _compose()["services"].items():
        if "build" not in service:
            continue
        lines = stages["base"] + stages[service["build"]["target"]]
        user_at = next(i for i, line in enumerate(lines) if line.startswith("USER "))
        user = lines[user_at].split()[1]
        before = "\n".join(lines[:user_at])
        for volume in service.get("volumes", []):
            path = volume.split(":")[1]
            made = re.findall(r"mkdir -p ((?:/\S+ ?)+)", before)
            assert any(path in m.split() for m in made), f"{name}: {path} is not made in the image"
            owned = re.findall(rf"chown (?:-R )?{user} (\S+)", before)
            assert any(path == o or (path.startswith(o + "/") and f"chown -R {user} {o}" in before) for o in owned), (
                f"{name}: {path} is not {user}'s"
            )
