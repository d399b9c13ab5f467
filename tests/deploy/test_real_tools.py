"""The deploy files checked by the tools that will read them: faas-cli, kubeconform,
hadolint, docker-compose (v1).

- ``faas-cli build --shrinkwrap`` lays out exactly what ``infra.local.build`` lays out (the
  local stack runs what the image would hold);
- ``faas-cli generate`` prints exactly the committed ``infra/openfaas/functions.yaml`` and,
  for Knative, Services with the same images, environment and secrets as ours — with the
  defaults and with a user's ``REGISTRY``/``TAG``;
- kubeconform (strict, the CRD schemas) accepts every manifest, also regenerated with a
  user's registry;
- ``faas-cli deploy`` against a recording server sends each function with its image,
  secrets, labels, annotations and limits;
- hadolint passes every Dockerfile; ``docker-compose config`` accepts the compose file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra import generate
from infra.generate import knative, openfaas
from infra.generate.common import REPO, load_stack
from infra.local.build import IGNORED, build_all
from tests.deploy.manifests import documents
from tests.support.tools import hadolint, schemas, tool

USER = {"REGISTRY": "registry.example.com:5000/team", "TAG": "v2.3.1"}
SOURCES = ("stack.yml", "functions", "scanline", "templates")
THIRD_PARTY = ("postgres:", "rabbitmq:", "minio/", "axllent/")


def _run(args: list[str | Path], *, cwd: Path = REPO, env: dict[str, str] | None = None,
         home: Path | None = None) -> str:
    environ = {"PATH": os.environ["PATH"], "HOME": str(home or cwd), **(env or {})}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=environ, capture_output=True,
                            text=True, check=False, timeout=300)
    assert result.returncode == 0, f"{args[0]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files faas-cli reads, copied (it writes ./build and ./template beside them)."""
    root = tmp_path_factory.mktemp("checkout")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED)
        else:
            shutil.copy2(source, root / name)
    (root / "template").symlink_to("templates")
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_shrinkwrap_lays_out_what_the_local_stack_builds(checkout: Path,
                                                          tmp_path: Path) -> None:
    _run([tool("faas-cli"), "build", "--shrinkwrap", "-f", "stack.yml"], cwd=checkout)
    ours = tmp_path / "ours"
    build_all(load_stack({}), out=ours)
    theirs = checkout / "build"
    assert sorted(p.name for p in theirs.iterdir()) == sorted(p.name for p in ours.iterdir())
    for context in theirs.iterdir():
        assert _tree(context) == _tree(ours / context.name), context.name


def _generate(api: str, env: dict[str, str]) -> list[dict[str, Any]]:
    out = _run([tool("faas-cli"), "generate", "-f", "stack.yml", f"--api={api}"], env=env)
    return [d for d in yaml.safe_load_all(out) if d]


def test_faas_cli_generates_the_committed_function_resources() -> None:
    assert _generate("openfaas.com/v1", {}) == documents(REPO / "infra/openfaas/functions.yaml")


def test_faas_cli_and_the_generator_agree_on_a_users_registry_and_tag() -> None:
    ours = openfaas.function_resources(load_stack(USER))
    assert _generate("openfaas.com/v1", USER) == ours
    for resource in ours:
        assert resource["spec"]["image"] == (
            f"{USER['REGISTRY']}/{resource['metadata']['name']}:{USER['TAG']}")


@pytest.mark.parametrize("env", [{}, USER], ids=["defaults", "user"])
def test_knative_services_carry_what_faas_cli_would_deploy(env: dict[str, str]) -> None:
    theirs = {s["metadata"]["name"]: s for s in _generate("serving.knative.dev/v1", env)}
    ours = {s["metadata"]["name"]: s for s in knative.services(load_stack(env))}
    assert set(theirs) == set(ours)
    for name, service in ours.items():
        (their,) = theirs[name]["spec"]["template"]["spec"]["containers"]
        (mine,) = service["spec"]["template"]["spec"]["containers"]
        assert mine["image"] == their["image"], name
        their_env = {e["name"]: e["value"] for e in their.get("env", [])}
        my_env = {e["name"]: e["value"] for e in mine["env"]}
        assert my_env == {**their_env, **{k: v for k, v in knative.OVERRIDES.items()
                                          if k in their_env}}, name
        # faas-cli mounts /var/openfaas/secrets/<name>/<name>, ours the file itself:
        # scanline.secrets reads both layouts.
        their_secrets = [m["mountPath"].rsplit("/", 1)[1] for m in their.get("volumeMounts", [])]
        volumes = service["spec"]["template"]["spec"].get("volumes", [])
        my_secrets = [s["secret"]["name"] for v in volumes for s in v["projected"]["sources"]]
        assert my_secrets == their_secrets, name


def _kubeconform(paths: list[Path]) -> str:
    root = schemas()
    return _run([tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", "1.30.0",
                 "-schema-location",
                 f"{root}/crds/{{{{ .Group }}}}-{{{{ .ResourceKind }}}}_"
                 "{{ .ResourceAPIVersion }}.json",
                 "-schema-location",
                 f"{root}/k8s/{{{{ .NormalizedKubernetesVersion }}}}-standalone"
                 "{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json",
                 *paths])


def manifests(root: Path) -> list[Path]:
    """Every Kubernetes manifest (Helm values are not one)."""
    return sorted(p for d in ("openfaas", "knative", "keda") for p in (root / d).glob("*.yaml")
                  if not p.name.endswith("-values.yaml"))


def test_kubeconform_accepts_every_committed_manifest() -> None:
    paths = manifests(REPO / "infra")
    assert len(paths) >= 7
    summary = _kubeconform(paths)
    assert "Invalid: 0, Errors: 0" in summary and "Skipped: 0" in summary, summary


def test_kubeconform_accepts_the_manifests_made_for_a_user(tmp_path: Path) -> None:
    for path, text in generate.outputs(USER).items():
        if path.suffix == ".yaml" and path.parent.parent == REPO / "infra":
            target = tmp_path / path.parent.name / path.name
            target.parent.mkdir(exist_ok=True)
            target.write_text(text)
    shutil.copy2(REPO / "infra/openfaas/platform.yaml", tmp_path / "openfaas")
    summary = _kubeconform(manifests(tmp_path))
    assert "Invalid: 0, Errors: 0" in summary and "Skipped: 0" in summary, summary
    images = [c["image"] for p in manifests(tmp_path) for d in documents(p)
              for c in _containers(d)]
    ours = [i for i in images if not i.startswith(THIRD_PARTY)]
    assert len(ours) >= 10, ours
    for image in ours:
        assert image.startswith(USER["REGISTRY"] + "/") and image.endswith(":" + USER["TAG"])


def _containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document.get("spec", {})
    template = spec.get("template", spec.get("jobTemplate", {}).get("spec", {}).get("template"))
    return list(((template or {}).get("spec") or {}).get("containers", []))


class _Recorder(BaseHTTPRequestHandler):
    """A gateway that accepts every call and remembers it (method, path, JSON body)."""

    calls: list[tuple[str, str, Any]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.calls.append((self.command, self.path, json.loads(body) if body else None))
        answer = b"[]" if self.command == "GET" else b""
        self.send_response(202 if self.command == "POST" else 200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_DELETE = _record

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_gateway() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    handler = type("Recorder", (_Recorder,), {"calls": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler.calls
    server.shutdown()


def test_faas_cli_deploy_sends_each_function_as_stack_yml_says(recording_gateway, tmp_path
                                                                ) -> None:
    url, calls = recording_gateway
    _run([tool("faas-cli"), "deploy", "-f", "stack.yml", "--gateway", url], env=USER,
         home=tmp_path)
    deployed = {body["service"]: body for method, path, body in calls
                if path == "/system/functions" and method in ("PUT", "POST")}
    stack = load_stack(USER)
    assert set(deployed) == set(stack.functions)
    for name, fn in stack.functions.items():
        body = deployed[name]
        assert body["image"] == f"{USER['REGISTRY']}/{name}:{USER['TAG']}"
        assert body.get("secrets", []) == list(fn.secrets)  # faas-cli omits an empty list
        assert body["labels"] == fn.labels
        assert body["annotations"] == fn.annotations
        assert body["envVars"] == fn.environment
        assert body["limits"] == fn.limits and body["requests"] == fn.requests
        assert body["readOnlyRootFilesystem"] is True
        assert body["envVars"]["ready_path"] == "/_/ready"


def test_hadolint_passes_every_dockerfile() -> None:
    dockerfiles = [REPO / "templates/python3-flask-cloudevents/Dockerfile",
                   REPO / "infra/connector/Dockerfile"]
    _run([hadolint(), "--failure-threshold", "info", *dockerfiles])


def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose (Debian's Compose v1) is not installed")
        pytest.skip("docker-compose (Debian's Compose v1) is not installed")
    # Its build contexts and secret files must exist: lay them out as a user would.
    for path, text in generate.outputs({}).items():
        if path.parent.name == "compose":
            (tmp_path / "infra/compose").mkdir(parents=True, exist_ok=True)
            (tmp_path / "infra/compose" / path.name).write_text(text)
    shutil.copytree(REPO / "infra/connector", tmp_path / "infra/connector")
    build_all(load_stack({}), out=tmp_path / "build")
    secrets = tmp_path / ".local/compose-secrets"
    secrets.mkdir(parents=True)
    for name in yaml.safe_load((REPO / "infra/compose/docker-compose.yml").read_text())[
            "secrets"]:
        (secrets / name).write_text("x")
    config = _run([compose, "-f", "infra/compose/docker-compose.yml", "config"], cwd=tmp_path)
    resolved = yaml.safe_load(config)
    assert set(resolved["services"]) >= set(load_stack({}).functions) | {"connector", "migrate"}


def _images(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from _images(value)
    elif isinstance(node, list):
        for item in node:
            yield from _images(item)


def test_make_manifests_writes_the_users_images_everywhere() -> None:
    """Every image of ours in every generated file (Kubernetes and compose alike) is the
    user's registry and tag; none is left at the defaults."""
    ours: dict[str, list[str]] = {}
    for path, text in generate.outputs(USER).items():
        if path.suffix in (".yaml", ".yml"):
            images = [i for d in yaml.safe_load_all(text) if d for i in _images(d)
                      if not i.startswith(THIRD_PARTY) and not i.startswith("nginx:")]
            if images:
                ours[path.name] = images
    assert {"functions.yaml", "connector.yaml", "migrations-job.yaml", "services.yaml",
            "eventing.yaml", "docker-compose.yml"} <= set(ours)
    for name, images in ours.items():
        for image in images:
            assert image.startswith(USER["REGISTRY"] + "/"), (name, image)
            assert image.endswith(":" + USER["TAG"]), (name, image)
    (job,) = yaml.safe_load_all(generate.outputs(USER)[REPO / "infra/openfaas/"
                                                          "migrations-job.yaml"])
    assert job["metadata"]["name"] == "scanline-migrate-v2-3-1"
