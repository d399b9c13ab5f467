"""Generate every deploy manifest from ``stack.yml``, so none of them can drift from it.

``python -m infra.generate`` (``make manifests``) rewrites the files below; ``--check`` only
reports the ones that differ from what the defaults give (a test runs it). stack.yml stays
the one place where a function's image, environment, secrets, topics, scaling and timeouts
are written; one module per target translates them: ``openfaas`` (Function resources, the
connector, the migrations Job, the secrets script), ``knative``, ``keda`` and ``compose``.

``${VAR:-default}`` is expanded from the environment, as faas-cli does: ``REGISTRY=… TAG=…
make manifests`` writes those images into every file (functions, connector, migrations
Job, dead-letter sink, compose). The committed files are the defaults (an empty
environment); regenerate with your values before applying them, or after editing stack.yml.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from infra import openapi
from infra.generate import compose, keda, knative, openfaas
from infra.generate.common import REPO, dump, load_stack

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def outputs(environ: Mapping[str, str] | None = None) -> dict[Path, str]:
    stack = load_stack({} if environ is None else environ)
    return {
        REPO / "infra/openfaas/functions.yaml": dump(*openfaas.function_resources(stack)),
        REPO / "infra/openfaas/connector.yaml": dump(*openfaas.connector_objects(stack)),
        REPO / "infra/openfaas/migrations-job.yaml": dump(openfaas.migrations_job(stack)),
        REPO / "infra/openfaas/create-secrets.sh": openfaas.secrets_script(stack),
        REPO / "infra/knative/services.yaml": dump(*knative.services(stack)),
        REPO / "infra/knative/eventing.yaml": dump(*knative.eventing(stack)),
        REPO / "infra/keda/ocr-scaledobject.yaml": dump(*keda.objects(stack)),
        REPO / "infra/compose/gateway.conf": compose.gateway_conf(stack),
        REPO / "infra/compose/docker-compose.yml": dump(compose.compose_file(stack)),
        REPO / openapi.DOCUMENT: openapi.render(openapi.combined(stack)),
    }


def stale() -> Iterator[Path]:
    for path, text in outputs().items():
        if not path.exists() or path.read_text() != text:
            yield path


def variables_from(environ: Mapping[str, str]) -> list[str]:
    """The stack.yml variables ``environ`` sets (the ones that change the output)."""
    named = set(_VARIABLE.findall((REPO / "stack.yml").read_text()))
    return sorted(name for name in named if environ.get(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="report files that differ from the defaults, write none")
    args = parser.parse_args(argv)
    if args.check:
        paths = list(stale())
        for path in paths:
            print(f"stale: {path.relative_to(REPO)}", file=sys.stderr)
        return 1 if paths else 0
    taken = variables_from(os.environ)
    if taken:
        print("from the environment: " + ", ".join(f"{n}={os.environ[n]}" for n in taken))
    for path, text in outputs(os.environ).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if path.suffix == ".sh":
            path.chmod(0o755)
        print(path.relative_to(REPO))
    return 0
