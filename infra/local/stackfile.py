"""Read ``stack.yml`` the way faas-cli does: the one model of the stack.

faas-cli substitutes ``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` (drone/envsubst)
in the raw YAML text before parsing it; doing the same here keeps one source of truth for
names, environment, secrets and topics. The local stack, the manifest generator
(``infra.generate``), the connector and the OpenAPI builder all read stack.yml through
``load`` and nothing else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.local.paths import REPO
from scanline.settings import Settings

EVENT_ONLY = "io.scanline.event-only"
CRON = "cron-function"
DEFAULT_MAX_REQUEST_BYTES = Settings.max_request_bytes

_VARIABLE = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def envsubst(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Expand variables like drone/envsubst: ``:-`` also replaces an empty value, ``-`` not."""
    env = os.environ if environ is None else environ

    def replace(match: re.Match[str]) -> str:
        name = match.group("name") or match.group("bare")
        value = env.get(name)
        op = match.group("op")
        if op == ":-" and not value:
            return match.group("default")
        if op == "-" and value is None:
            return match.group("default")
        return value or ""

    return _VARIABLE.sub(replace, text)


def duration_seconds(value: str) -> float:
    """A Go duration as the watchdog reads it (``35s``, ``2m``, ``1m30s``)."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a Go duration: {value!r}")
    return sum(float(n) * units[u] for n, u in parts)


@dataclass(frozen=True)
class Function:
    """One entry of ``functions:``; ``port`` is where its local process listens."""

    name: str
    lang: str
    handler: str
    port: int
    environment: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    limits: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    build_args: dict[str, str] = field(default_factory=dict)
    readonly_root_filesystem: bool = False

    @property
    def event_only(self) -> bool:
        """Marked ``io.scanline.event-only``: no outside caller may reach it."""
        return self.annotations.get(EVENT_ONLY, "").lower() == "true"

    @property
    def max_request_bytes(self) -> int:
        """The body limit the function enforces (the gateway refuses larger ones first)."""
        return int(self.environment.get("MAX_REQUEST_BYTES", DEFAULT_MAX_REQUEST_BYTES))

    def timeout(self, name: str, default: str = "30s") -> float:
        """One of the watchdog's timeouts (``exec_timeout``, ...) in seconds."""
        return duration_seconds(self.environment.get(name, default))

    @property
    def max_inflight(self) -> int:
        """The watchdog's concurrency limit (0: none); it answers 429 beyond it."""
        return int(self.environment.get("max_inflight", "0"))

    def scale(self, bound: str, default: int) -> int:
        """``com.openfaas.scale.<bound>`` (min, max, target) as a number."""
        return int(self.labels.get(f"com.openfaas.scale.{bound}", default))

    @property
    def topics(self) -> tuple[str, ...]:
        """CloudEvent types from the comma-separated ``topic`` annotation (the connector's);
        ``cron-function`` is the cron-connector's marker, not an event type."""
        raw = self.annotations.get("topic", "")
        return tuple(t.strip() for t in raw.split(",") if t.strip() and t.strip() != CRON)

    @property
    def schedule(self) -> str | None:
        """The cron expression the OpenFaaS cron-connector (and the local scheduler) runs
        the function on."""
        if CRON not in self.annotations.get("topic", ""):
            return None
        return self.annotations.get("schedule") or None


@dataclass(frozen=True)
class Stack:
    root: Path
    functions: dict[str, Function]
    copy: tuple[str, ...]
    gateway: str = ""

    def secret_names(self) -> list[str]:
        return sorted({s for fn in self.functions.values() for s in fn.secrets})


def _scalar(value: Any) -> str:
    """A YAML scalar as the string faas-cli's map[string]string would hold (``false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _strings(mapping: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): _scalar(v) for k, v in (mapping or {}).items()}


def load(path: Path | None = None, *, port_base: int | None = None,
         environ: Mapping[str, str] | None = None) -> Stack:
    """Parse stack.yml; functions get ports ``port_base + 1, + 2, ...`` in file order."""
    path = path or REPO / "stack.yml"
    env = os.environ if environ is None else environ
    base = port_base if port_base is not None else int(env.get("FUNCTION_PORT_BASE", "8100"))
    document = yaml.safe_load(envsubst(path.read_text(), env)) or {}
    functions = {}
    for index, (name, spec) in enumerate((document.get("functions") or {}).items(), start=1):
        functions[name] = Function(
            name=name,
            lang=spec["lang"],
            handler=spec["handler"],
            port=base + index,
            environment=_strings(spec.get("environment")),
            secrets=tuple(spec.get("secrets") or ()),
            annotations=_strings(spec.get("annotations")),
            labels=_strings(spec.get("labels")),
            image=str(spec.get("image", "")),
            limits=_strings(spec.get("limits")),
            requests=_strings(spec.get("requests")),
            build_args=_strings(spec.get("build_args")),
            readonly_root_filesystem=bool(spec.get("readonly_root_filesystem", False)),
        )
    copy = tuple((document.get("configuration") or {}).get("copy") or ())
    gateway = _scalar((document.get("provider") or {}).get("gateway"))
    return Stack(root=path.parent, functions=functions, copy=copy, gateway=gateway)
