"""deploy/compose.yaml and deploy/Dockerfile read the way Docker would, for tests that run
their services as plain processes (there is no Docker engine on the test machines).

Strict on purpose: anything these files start using that is not handled here (another
interpolation form, `env_file:`, an `entrypoint:` override, a multi-line ENV value...)
raises, so the process test cannot silently run something compose would not.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"

# Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?message}, ${NAME?message}, ${NAME:+alt}, ${NAME+alt}. Nested ${…} inside a default
# is valid compose but unused here, so it is refused rather than half-supported.
_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^${}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)
# Service keys the process runner knows how to honour (or may safely ignore: build, image,
# restart, healthcheck and stop_grace_period describe containers, not the process).
_SERVICE_KEYS = {
    "build",
    "image",
    "environment",
    "command",
    "restart",
    "healthcheck",
    "depends_on",
    "ports",
    "stop_grace_period",
}


class InterpolationError(ValueError):
    """What `docker compose` would refuse to start with (or what this helper cannot do)."""


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """One string with `${…}` resolved from `env` exactly as compose does."""

    def resolve(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None:
            raise InterpolationError(f"unsupported interpolation at {match.start()} in {value!r}")
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        missing = current is None or (op is not None and op.startswith(":") and current == "")
        if op in ("-", ":-"):
            return arg if missing else str(current)
        if op in ("?", ":?"):
            if missing:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return str(current)
        if op in ("+", ":+"):
            return "" if missing else arg
        return current or ""  # plain ${NAME}: an unset variable is "" (compose warns)

    return _TOKEN.sub(resolve, value)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Every string value of a parsed compose file (not keys), as compose interpolates them."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(item, env) for key, item in node.items()}
    return node


def load_compose(dotenv: Mapping[str, str]) -> dict[str, Any]:
    """deploy/compose.yaml with anchors merged and `dotenv` interpolated (nothing from the
    test runner's own environment: compose would read the operator's shell there)."""
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    resolved = interpolate_tree(data, dotenv)
    assert isinstance(resolved, dict)
    return resolved


def check_runnable(service: Mapping[str, Any]) -> None:
    """Refuse a service using keys that would change its process in ways not reproduced."""
    unknown = set(service) - _SERVICE_KEYS
    if unknown:
        raise InterpolationError(f"service keys the process runner does not handle: {unknown}")


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:` block (mapping or list form) as strings."""
    block = service.get("environment", {})
    if isinstance(block, list):
        block = dict(item.split("=", 1) for item in block)
    result: dict[str, str] = {}
    for name, value in block.items():
        if value is None or isinstance(value, bool | dict | list):
            # None means "take it from the shell": never wanted in our file.
            raise InterpolationError(f"{name}: unsupported environment value {value!r}")
        result[name] = str(value)
    return result


@dataclass(frozen=True)
class Image:
    """What the final stage of deploy/Dockerfile gives every container."""

    env: dict[str, str]  # ENV, in order; values as written ($PATH not expanded)
    entrypoint: list[str]
    healthcheck: list[str]  # the exec form of HEALTHCHECK … CMD [...]


def load_dockerfile() -> Image:
    lines: list[str] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    env: dict[str, str] = {}
    entrypoint: list[str] = []
    healthcheck: list[str] = []
    for line in final:
        instruction, _, rest = line.partition(" ")
        if instruction == "ENV":
            for pair in shlex.split(rest):
                name, sep, value = pair.partition("=")
                if not sep:
                    raise InterpolationError(f"legacy `ENV name value` form: {line!r}")
                env[name] = value
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "HEALTHCHECK":
            healthcheck = json.loads(rest.split(" CMD ", 1)[1])
    return Image(env, entrypoint, healthcheck)
