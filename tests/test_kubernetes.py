"""The Kubernetes manifests (deploy/): rendered by `kubectl kustomize`, every object validated against the Kubernetes
schemas (kubernetes-validate, strict: an unknown field fails), and checked against the code: each service gets the
settings it needs, talks only to the services it calls, and is probed, budgeted and scaled. No cluster runs here."""

from __future__ import annotations

import base64
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or "kubectl"
K8S_VERSION = kubernetes_validate.latest_version()
# Made by the operator (`kubectl create secret generic alpr-signing-keys --from-file=keys/`, docs/deploy.md).
OPERATOR_SECRETS = {"alpr-signing-keys"}
WORKLOADS = (*SERVICES, "ingest-agents")  # the importer runs ingest's code, without its HTTP server


def _render(tmp: Path, overlay: str) -> list[dict[str, Any]]:
    """Render an overlay from a copy of deploy/ whose secret files hold strong random values (as an operator's)."""
    deploy = tmp / "deploy"
    if not deploy.exists():
        shutil.copytree(ROOT / "deploy", deploy)
        prod = deploy / "overlays" / "production"
        values = {
            k: secrets.token_urlsafe(32) for k in ("signing", "s3", "client", "client2", "metrics", *SERVICES, "admin")
        }
        (prod / "secrets.env").write_text(
            f"ALPR_URL_SIGNING_SECRET={values['signing']}\nALPR_S3_ACCESS_KEY=alpr-s3\n"
            f"ALPR_S3_SECRET_KEY={values['s3']}\nALPR_SERVICE_CLIENT_ID_INGEST=service-ingest\n"
            f"ALPR_SERVICE_CLIENT_SECRET_INGEST={values['client']}\nALPR_METRICS_TOKEN={values['metrics']}\n"
            f"ALPR_SERVICE_CLIENT_ID_HOTLIST=service-hotlist\nALPR_SERVICE_CLIENT_SECRET_HOTLIST={values['client2']}\n"
        )
        passwords = ", ".join(f'"{s}": "{values[s]}"' for s in SERVICES)
        urls = "".join(
            f"ALPR_DATABASE_URL_{s.upper()}=postgresql://alpr_{s}:{values[s]}@db.example.internal:5432/alpr\n"
            for s in SERVICES
        )
        (prod / "database.env").write_text(
            f"ALPR_DATABASE_URL_ADMIN=postgresql://alpr_admin:{values['admin']}@db.example.internal:5432/alpr\n"
            f"ALPR_DB_ROLE_PASSWORDS={{{passwords}}}\n{urls}"
        )
    out = subprocess.run(
        [KUBECTL, "kustomize", str(deploy / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=["production", "staging"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _render(tmp_path_factory.mktemp("k8s"), request.param)


def _by_kind(objs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _env_of(objs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment the container gets: its ConfigMaps, then its own entries resolved from the Secrets."""
    maps, secret_objs = _by_kind(objs, "ConfigMap"), _by_kind(objs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"] in secret_objs, f"{entry['name']}: no Secret {ref['name']}"
            env[entry["name"]] = base64.b64decode(secret_objs[ref["name"]]["data"][ref["key"]]).decode()
    return env


def test_every_object_validates_against_the_kubernetes_schemas(rendered: list[dict[str, Any]]) -> None:
    kinds = {o["kind"] for o in rendered}
    assert {"Deployment", "Service", "Job", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "Secret", "ConfigMap", "PersistentVolumeClaim", "Namespace", "ServiceAccount"} <= kinds  # fmt: skip
    for obj in rendered:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)  # raises on a bad field or value


def test_a_broken_manifest_is_refused_by_the_validator(rendered: list[dict[str, Any]]) -> None:
    """The check above can fail: a Deployment with a misspelt field does not validate."""
    deployment = dict(_by_kind(rendered, "Deployment")["ingest"])
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_each_service_is_a_probed_deployment_with_a_service_autoscaler_and_budget(
    rendered: list[dict[str, Any]],
) -> None:
    deployments, services = _by_kind(rendered, "Deployment"), _by_kind(rendered, "Service")
    hpas, pdbs = _by_kind(rendered, "HorizontalPodAutoscaler"), _by_kind(rendered, "PodDisruptionBudget")
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert set(deployments) == set(WORKLOADS)
    for name in SERVICES:
        port = defaults.port_of(name)
        container = _container(deployments[name])
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert services[name]["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name and hpas[name]["spec"]["minReplicas"] >= 2
    for name in WORKLOADS:
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert deployments[name]["spec"]["replicas"] >= 2  # one pod lost never stops the service
        requests = _container(deployments[name])["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests)
        image = _container(deployments[name])["image"]
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), f"{name}: image not pinned by version: {image}"
    assert _container(deployments["ingest-agents"])["command"] == ["python", "-m", "services.ingest.agents"]
    assert _container(deployments["ingest-agents"])["image"] == _container(deployments["ingest"])["image"]


def test_the_migrations_job_comes_first_with_what_it_needs(rendered: list[dict[str, Any]]) -> None:
    """docs/deploy.md applies `alpr.dev/step=1` (config, secrets, the Job), waits for the Job, then the rest."""
    job = _by_kind(rendered, "Job")["alpr-migrate"]
    steps = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("labels", {}).get("alpr.dev/step") for o in rendered}
    for (kind, name), step in steps.items():
        if kind in ("Job", "ConfigMap", "Secret", "Namespace", "ServiceAccount"):
            assert step == "1", (kind, name)
        if kind == "Deployment":
            assert step == "2", (kind, name)
    pod = job["spec"]["template"]["spec"]
    migrate = pod["initContainers"][0]
    assert migrate["command"][-1] == "migrate"
    env = _env_of(rendered, migrate)
    settings = Settings(_env_file=None, **_as_fields(env))  # type: ignore[call-arg]
    assert set(settings.db_role_passwords) == set(SERVICES)
    # Each calling service logs in with the identity the job makes for it, never another's.
    clients = {c["command"][-1]: _env_of(rendered, c) for c in pod["containers"]}
    assert sorted(clients) == ["hotlist", "ingest"]
    assert all(c["command"][-3:-1] == ["ensure-service-client", "--service"] for c in pod["containers"])
    assert clients["ingest"]["ALPR_SERVICE_CLIENT_SECRET"] != clients["hotlist"]["ALPR_SERVICE_CLIENT_SECRET"]
    for name, own in (("ingest", "ingest"), ("ingest-agents", "ingest"), ("hotlist", "hotlist")):
        env = _env_of(rendered, _container(_by_kind(rendered, "Deployment")[name]))
        assert env["ALPR_SERVICE_CLIENT_SECRET"] == clients[own]["ALPR_SERVICE_CLIENT_SECRET"], name
        assert env["ALPR_SERVICE_CLIENT_ID"] == clients[own]["ALPR_SERVICE_CLIENT_ID"], name


def _as_fields(env: dict[str, str]) -> dict[str, Any]:
    """ALPR_* variables as Settings keyword arguments (parsed the way the environment would be)."""
    fields = Settings.model_fields
    out: dict[str, Any] = {}
    for key, value in env.items():
        assert key.startswith("ALPR_"), key
        name = key.removeprefix("ALPR_").lower()
        assert name in fields, f"{key} is not a setting"
        out[name] = yaml.safe_load(value) if name == "db_role_passwords" else value
    return out


def test_each_workload_gets_every_setting_it_needs_and_no_secret_it_does_not(
    rendered: list[dict[str, Any]],
) -> None:
    from alpr.roles import role_names

    deployments = _by_kind(rendered, "Deployment")
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    roles = role_names("alpr")
    for name in WORKLOADS:
        service = "ingest" if name == "ingest-agents" else name
        container = _container(deployments[name])
        env = _env_of(rendered, container)
        # Production's checks pass (real secrets, a database, an object store with keys) ...
        settings = Settings(_env_file=None, **_as_fields(env))  # type: ignore[call-arg]
        assert settings.environment == "production" and settings.s3_endpoint and settings.metrics_token
        assert settings.database_url and f"//{roles[service]}:" in settings.database_url
        for other in SERVICES:  # ... the others are found by their Service's name ...
            assert settings.url_of(other) == f"http://{other}:{settings.port_of(other)}"
        # ... whatever compose gives the same service, Kubernetes gives too ...
        assert set(compose[name]["environment"]) <= set(env) | {"ALPR_DB_ROLE_PASSWORDS"}, name
        # ... those that call other services log in as the service client; access alone holds the signing keys.
        calls_out = service in ("ingest", "hotlist")
        assert (settings.service_client_secret is not None) == calls_out, name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in deployments[name]["spec"]["template"]["spec"]["volumes"]}
        keys = mounts.get(str(settings.keys_dir))
        assert (keys is not None and volumes[keys]["secret"]["secretName"] in OPERATOR_SECRETS) == (name == "access")
        assert settings.jwks_url == "http://access:8001/.well-known/jwks.json"
        if service == "ingest":  # ingest and the importer share the agents' spool volume
            spool = volumes[mounts["/data/agent-spool"]]
            assert spool["persistentVolumeClaim"]["claimName"] == "alpr-agent-spool"
    pvc = _by_kind(rendered, "PersistentVolumeClaim")["alpr-agent-spool"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert _container(deployments["ingest"])["env"][-1] == {"name": "ALPR_INGEST_AGENT_IMPORT_PROCESS", "value": "true"}


def _calls_in_code(service: str) -> set[str]:
    """Services a service's code calls: `url_of("x")` in its package, the token endpoint and the key set on access."""
    called = {"access"}  # JWKS (every service verifies tokens), and the service client's token
    for path in (ROOT / "services" / service).rglob("*.py"):
        called |= set(re.findall(r'url_of\("(\w+)"\)', path.read_text()))
    return called - {service}


def test_network_policies_let_each_service_reach_only_what_it_calls(rendered: list[dict[str, Any]]) -> None:
    policies = list(_by_kind(rendered, "NetworkPolicy").values())
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
               and not p["spec"].get("egress") for p in deny)  # fmt: skip
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    port_of = {defaults.port_of(s): s for s in SERVICES}
    for name in WORKLOADS:
        labels = {"app.kubernetes.io/name": name}
        reach: set[str] = set()
        for policy in policies:
            selector = policy["spec"]["podSelector"].get("matchLabels", {})
            if selector.items() <= labels.items():
                for rule in policy["spec"].get("egress", []):
                    for peer in rule.get("to", []):
                        target = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                        if target:
                            assert {p["port"] for p in rule["ports"]} == {defaults.port_of(target)}
                            reach.add(target)
                        else:  # outside the cluster: the database, the object store, never a service port
                            assert not {p["port"] for p in rule["ports"]} & set(port_of)
        assert reach == _calls_in_code("ingest" if name == "ingest-agents" else name), name
    # recognition is reached only from ingest and its importer.
    ingress = _by_kind(rendered, "NetworkPolicy")["recognition-ingress"]["spec"]["ingress"]
    sources = {peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for r in ingress for peer in r["from"]}
    assert sources == {"ingest", "ingest-agents"}
