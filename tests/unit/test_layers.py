"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and a breach fails them.

`scripts/check` runs `lint-imports`; these tests show that the check is not vacuous: the
same configuration, run over a copy of the package with one forbidden import added, fails
and names the import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import amosync

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's configuration, over the package under `package_parent`."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=package_parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the amosync package to break, importable from the returned folder."""
    source = Path(amosync.__file__).parent
    shutil.copytree(source, tmp_path / "amosync", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_package_keeps_every_contract(package_copy: Path) -> None:
    result = lint_imports(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core/breach.py", "import sqlalchemy\n", "core is pure"),
        ("core/breach.py", "from amosync import settings\n", "core is pure"),
        ("webhook/breach.py", "from amosync.upsert import entity\n", "webhook path only stores"),
        ("worker/breach.py", "from amosync.testing import fake_state\n", "fake amoCRM"),
        ("inbox/breach.py", "from amosync.web import app\n", "cli and web are the faces"),
        ("catchup/breach.py", "from sqlalchemy import select\n", "SQLAlchemy is used"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    package_copy: Path, module: str, line: str, broken: str
) -> None:
    (package_copy / "amosync" / module).write_text(line)

    result = lint_imports(package_copy)

    assert result.returncode == 1, result.stdout + result.stderr
    broken_lines = [row for row in result.stdout.splitlines() if " BROKEN" in row]
    assert any(broken in row for row in broken_lines), result.stdout
    assert f"amosync.{module.removesuffix('.py').replace('/', '.')} ->" in result.stdout


def top_level_modules() -> set[str]:
    package = Path(amosync.__file__).parent
    names = {p.stem for p in package.glob("*.py")} | {
        p.parent.name for p in package.glob("*/__init__.py")
    }
    return {f"amosync.{n}" for n in names - {"__init__", "__main__"}}


@pytest.mark.parametrize(
    ("contract", "listed", "left_out"),
    [
        ("core is pure", "forbidden_modules", {"amosync.core"}),
        ("SQLAlchemy is used", "source_modules", {"amosync.db", "amosync.inbox", "amosync.upsert"}),
        ("fake amoCRM", "source_modules", {"amosync.testing"}),
        ("cli and web are the faces", "source_modules", {"amosync.cli", "amosync.web"}),
    ],
)
def test_a_new_top_level_module_is_not_left_out_of_a_contract(
    contract: str, listed: str, left_out: set[str]
) -> None:
    """The contracts list modules by name: a module added later must be added to them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [found] = [c for c in config["tool"]["importlinter"]["contracts"] if contract in c["name"]]
    named = {m for m in found[listed] if m.startswith("amosync.")}
    assert named | left_out == top_level_modules()
