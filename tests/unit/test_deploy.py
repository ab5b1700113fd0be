"""The deployment files in deploy/ agree with the code: real settings only, no secrets, the
commands and safety properties docs/OPERATIONS.md promises."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from amosync.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KNOWN = {f"AMOSYNC_{name.upper()}" for name in Settings.model_fields}
SECRETS = {
    "AMOSYNC_AMOCRM_LONG_LIVED_TOKEN",
    "AMOSYNC_AMOCRM_CLIENT_SECRET",
    "AMOSYNC_WEBHOOK_SECRET",
    "AMOSYNC_ADMIN_TOKEN",
}


def _without_comments(path: Path) -> str:
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in path.read_text().splitlines())


def _compose() -> dict[str, dict[str, dict[str, object]]]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_variable_named_in_deploy_files_is_a_real_setting() -> None:
    """A typo in an env file or unit would be silently ignored by amosync: none exist."""
    named: set[str] = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            named |= set(re.findall(r"\bAMOSYNC_[A-Z_]+[A-Z]\b", path.read_text()))
    not_settings = {"AMOSYNC_IMAGE_TAG", "AMOSYNC_HTTP_PORT"}  # compose-only knobs

    assert set() == named - KNOWN - not_settings


def test_env_example_holds_placeholders_not_secrets() -> None:
    """Every secret in amosync.env.example is CHANGE-ME or commented out."""
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "amosync.env.example").read_text().splitlines()
        if line.startswith("AMOSYNC_")
    )

    assert {name: "CHANGE-ME" for name in SECRETS if name in values} == {
        name: values[name] for name in SECRETS if name in values
    }
    assert "CHANGE-ME" in values["AMOSYNC_DATABASE_URL"]


def test_compose_runs_migrate_once_then_web_and_worker_from_env_only() -> None:
    """migrate → (serve --no-worker, worker); secrets come from the environment, not the file."""
    services = _compose()["services"]
    web, worker, migrate = services["web"], services["worker"], services["migrate"]
    environment = web["environment"]
    assert isinstance(environment, dict)

    assert (["serve", "--no-worker"], ["worker"], ["migrate"]) == (
        web["command"],
        worker["command"],
        migrate["command"],
    )
    assert {"migrate": {"condition": "service_completed_successfully"}} == web["depends_on"]
    assert web["depends_on"] == worker["depends_on"]
    assert {"db": {"condition": "service_healthy"}} == migrate["depends_on"]
    assert all(str(environment[name]).startswith("${") for name in SECRETS & environment.keys())
    assert str(environment["AMOSYNC_DATABASE_URL"]).startswith("postgresql://")
    assert ["127.0.0.1:${AMOSYNC_HTTP_PORT:-3000}:3000"] == web["ports"]


def test_dockerfile_final_stage_is_slim_non_root_with_a_health_check() -> None:
    """The image runs as a user, checks /health with Python, and installs no build tools."""
    text = _without_comments(DEPLOY / "Dockerfile")
    final = text.rsplit("\nFROM ", 1)[1]

    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert re.search(r"^USER amosync$", final, flags=re.M)
    assert "HEALTHCHECK" in final
    assert "/health" in final
    assert "urllib.request" in final
    assert [] == re.findall(r"\b(apt-get|gcc|build-essential|curl)\b", final)
    assert "COPY --from=builder /opt/amosync /opt/amosync" in final


def _unit(name: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            entries.setdefault(key, []).append(value)
    return entries


def test_systemd_units_migrate_first_restart_on_failure_and_are_hardened() -> None:
    """serve migrates before starting; both restart on failure with the hardening options."""
    serve, worker = _unit("amosync-serve.service"), _unit("amosync-worker.service")

    assert ["/opt/amosync/bin/amosync migrate"] == serve["ExecStartPre"]
    assert ["/opt/amosync/bin/amosync serve --no-worker"] == serve["ExecStart"]
    assert ["/opt/amosync/bin/amosync worker"] == worker["ExecStart"]
    for unit in (serve, worker):
        assert ["on-failure"] == unit["Restart"]
        assert ["yes"] == unit["NoNewPrivileges"]
        assert ["strict"] == unit["ProtectSystem"]
        assert ["amosync"] == unit["User"]
        assert ["/etc/amosync/amosync.env"] == unit["EnvironmentFile"]


def test_caddy_public_site_forwards_only_the_webhook_path() -> None:
    """On the public site only /amocrm/* is proxied; everything else gets a 404."""
    text = _without_comments(DEPLOY / "Caddyfile")
    public = text.split("\nsync.example.com {", 1)[1].split("\n}\n", 1)[0]

    assert "@webhook path /amocrm/*" in public
    assert 1 == public.count("reverse_proxy 127.0.0.1:3000")
    assert "handle @webhook {" in public
    assert re.search(r"handle \{\s*respond 404\s*\}", public)


def _caddy_uri_filter(block: str) -> tuple[str, str]:
    """The pattern and replacement of the `request>uri regexp` filter in a Caddyfile block."""
    found = re.search(r'request>uri regexp "([^"]+)" "([^"]*)"', block)
    assert found is not None, "no request>uri filter"
    return found.group(1), found.group(2).replace("${1}", r"\1")


def test_caddy_logs_no_webhook_secret() -> None:
    """Issue #19: Caddy's request log (and its error log, which carries the request too)
    never holds the webhook secret: not the path `/amocrm/<secret>`, not `?secret=`, not
    the `X-Amosync-Secret` header. The URI keeps its first segment only."""
    text = _without_comments(DEPLOY / "Caddyfile")
    snippet = text.split("(secret_free_log) {", 1)[1].split("\n}\n", 1)[0]
    public = text.split("\nsync.example.com {", 1)[1].split("\n}\n", 1)[0]
    default_log = text.split("log default {", 1)[1].split("\n\t}\n", 1)[0]
    pattern, replacement = _caddy_uri_filter(snippet)
    assert (pattern, replacement) == _caddy_uri_filter(default_log)
    secret = "9f86d081884c7d659a2feaa0c55ad015"

    logged = [
        re.sub(pattern, replacement, uri)
        for uri in (
            f"/amocrm/{secret}",
            f"/amocrm/{secret}?x=1",
            f"/amocrm/process-webhook?secret={secret}",
            f"/AMOCRM/{secret}/",
            f"/amocrm?secret={secret}",
        )
    ]

    assert [] == [uri for uri in logged if secret in uri]
    assert logged[0].startswith("/amocrm")
    assert "request>headers>X-Amosync-Secret delete" in snippet
    assert "request>headers>X-Amosync-Secret delete" in default_log
    assert re.search(r"log \{[^}]*import secret_free_log", public)
