"""Docs match the code: every setting is documented once, and examples hold no secrets."""

from __future__ import annotations

import re
from pathlib import Path

from amosync.settings import Settings

ROOT = Path(__file__).parent.parent.parent
# The one full settings table; the README shows only the settings most people change.
CONFIGURATION = ROOT / "docs" / "CONFIGURATION.md"
SETTING_ROW = r"^\| `(AMOSYNC_[A-Z_]+)` \| ([^|]+) \|"


def expected_default(name: str) -> str:
    """A setting's default as the tables write it: `value`, or — when there is none."""
    field = Settings.model_fields[name]
    return "—" if field.default is None else f"`{field.default}`"


def test_configuration_table_lists_every_setting() -> None:
    """docs/CONFIGURATION.md names exactly the AMOSYNC_* variables Settings reads, in order."""
    section = CONFIGURATION.read_text().split("## Every setting", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(AMOSYNC_[A-Z_]+)` \|", section, flags=re.M)

    assert [f"AMOSYNC_{name.upper()}" for name in Settings.model_fields] == documented


def test_configuration_defaults_match_settings() -> None:
    """Each documented default is the default Settings really uses."""
    rows = dict(re.findall(SETTING_ROW, CONFIGURATION.read_text(), flags=re.M))
    for name in Settings.model_fields:
        assert expected_default(name) == rows[f"AMOSYNC_{name.upper()}"].strip(), name


def test_readme_short_table_names_real_settings_with_their_defaults() -> None:
    """The README's few settings exist, show their real defaults, and link to the full table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(SETTING_ROW, section, flags=re.M)
    fields = {f"AMOSYNC_{name.upper()}": name for name in Settings.model_fields}

    assert 8 <= len(rows) <= 12
    assert "docs/CONFIGURATION.md" in section
    for variable, shown in rows:
        assert variable in fields, variable
        assert expected_default(fields[variable]) == shown.strip(), variable


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
