"""scripts/audit's verdict: fail on a known vulnerability, warn (not fail) when unanswered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_report.py"


def verdict(
    tmp_path: Path, report: dict[str, Any] | None, *, strict: bool = False
) -> tuple[int, str]:
    report_file = tmp_path / "report.json"
    if report is not None:
        report_file.write_text(json.dumps(report))
    stderr_file = tmp_path / "stderr"
    stderr_file.write_text("requests.exceptions.ConnectionError: Failed to resolve 'pypi.org'\n")
    env = {k: v for k, v in os.environ.items() if k != "AMOSYNC_AUDIT_STRICT"}
    if strict:
        env["AMOSYNC_AUDIT_STRICT"] = "1"
    done = subprocess.run(
        [sys.executable, SCRIPT, report_file, "1", stderr_file],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


CLEAN = {"name": "starlette", "version": "1.10.0", "vulns": []}
VULNERABLE = {
    "name": "jinja2",
    "version": "3.1.2",
    "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"]}],
}
SKIPPED = {
    "name": "uvicorn",
    "skip_reason": "Dependency not found on PyPI and could not be audited",
}


def test_known_vulnerability_fails_and_names_the_fix(tmp_path: Path) -> None:
    """A vulnerable pin exits 1 and says which id and which version fixes it."""
    code, output = verdict(tmp_path, {"dependencies": [CLEAN, VULNERABLE], "fixes": []})

    assert 1 == code
    assert "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in: 3.1.3)" in output


def test_clean_report_passes(tmp_path: Path) -> None:
    """No vulnerabilities and nothing skipped exits 0 with the count audited."""
    code, output = verdict(tmp_path, {"dependencies": [CLEAN], "fixes": []})

    assert (0, "audit: 1 pinned packages, no known vulnerabilities\n") == (code, output)


@pytest.mark.parametrize("report", [None, {"dependencies": [SKIPPED], "fixes": []}])
def test_unanswered_audit_warns_and_passes_unless_strict(
    tmp_path: Path, report: dict[str, Any] | None
) -> None:
    """No report, or every package skipped: a NOT audited warning, exit 0; strict exits 1."""
    code, output = verdict(tmp_path, report)
    strict_code, _ = verdict(tmp_path, report, strict=True)

    assert (0, 1) == (code, strict_code)
    assert "NOT audited" in output
