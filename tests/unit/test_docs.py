"""Docs match the code: every setting is documented once, and examples hold no secrets."""

from __future__ import annotations

import re
from pathlib import Path

from amosync.settings import Settings

ROOT = Path(__file__).parent.parent.parent


def test_readme_configuration_table_lists_every_setting() -> None:
    """The README table names exactly the AMOSYNC_* variables Settings reads, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(AMOSYNC_[A-Z_]+)` \|", section, flags=re.M)

    assert [f"AMOSYNC_{name.upper()}" for name in Settings.model_fields] == documented


def test_readme_defaults_match_settings() -> None:
    """Each documented default is the default Settings really uses."""
    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(AMOSYNC_[A-Z_]+)` \| ([^|]+) \|", readme, flags=re.M))
    for name, field in Settings.model_fields.items():
        shown = rows[f"AMOSYNC_{name.upper()}"].strip()
        expected = "—" if field.default is None else f"`{field.default}`"
        assert expected == shown, name


def test_env_example_names_only_real_settings_and_no_values_for_secrets() -> None:
    """.env.example uses known variables and leaves token and secret empty."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = [
        re.sub(r"^#\s*", "", line).split("=", 1)
        for line in lines
        if re.match(r"^#?\s*AMOSYNC_", line)
    ]
    known = {f"AMOSYNC_{name.upper()}" for name in Settings.model_fields}

    assert set() == {name for name, _ in pairs} - known
    assert {"AMOSYNC_AMOCRM_LONG_LIVED_TOKEN": "", "AMOSYNC_WEBHOOK_SECRET": ""} == {
        name: value
        for name, value in pairs
        if name in {"AMOSYNC_AMOCRM_LONG_LIVED_TOKEN", "AMOSYNC_WEBHOOK_SECRET"}
    }
