# ruff: noqa: T201 - a command-line script: it talks on stdout and stderr
"""Turn a pip-audit JSON report into a verdict for scripts/audit.

Usage: audit_report.py REPORT_JSON PIP_AUDIT_EXIT_CODE PIP_AUDIT_STDERR

Exit 1: a pinned version has a known vulnerability (or, with AMOSYNC_AUDIT_STRICT=1, the
audit could not run or skipped packages). Exit 0: nothing known, or the vulnerability
service could not be asked — then a warning says so, because "no answer" is not "clean".
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _warn(message: str) -> None:
    print(f"audit: WARNING: {message}", file=sys.stderr)


def main(report_path: str, pip_audit_rc: str, stderr_path: str) -> int:
    strict = os.environ.get("AMOSYNC_AUDIT_STRICT") == "1"
    report_file = Path(report_path)
    if not report_file.is_file() or not report_file.read_text().strip():
        tail = Path(stderr_path).read_text().strip().splitlines()[-3:] if stderr_path else []
        _warn(
            f"pip-audit did not finish (exit {pip_audit_rc}); the lock file was NOT audited. "
            "Usually the vulnerability service is unreachable. Last lines:\n    "
            + "\n    ".join(tail)
        )
        return 1 if strict else 0
    report = json.loads(report_file.read_text())
    deps = report.get("dependencies", [])
    vulnerable = [d for d in deps if d.get("vulns")]
    skipped = [d for d in deps if "skip_reason" in d]
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in: {fixed})")
    audited = len(deps) - len(skipped)
    if skipped and audited == 0:
        _warn(
            f"the vulnerability service answered for none of the {len(deps)} pinned packages "
            f"(first: {skipped[0]['skip_reason']}); the lock file was NOT audited"
        )
    elif skipped:
        names = ", ".join(d["name"] for d in skipped)
        _warn(f"{len(skipped)} of {len(deps)} packages could not be audited: {names}")
    if vulnerable:
        print(f"audit: {len(vulnerable)} pinned packages have known vulnerabilities")
        return 1
    if skipped and strict:
        return 1
    if audited:
        print(f"audit: {audited} pinned packages, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
