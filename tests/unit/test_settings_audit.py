"""Unknown `AMOSYNC_*` variables: found in the environment and `.env`, with the closest
setting; the tools' own variables are not flagged."""

from __future__ import annotations

from pathlib import Path

from amosync.settings_audit import NOT_SETTINGS, unknown_variables


def test_typos_get_the_closest_setting(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("AMOSYNC_RENTPROG_FEILD_ID=1\nAMOSYNC_PORT=3000\nOTHER=1\n")
    environ = {
        "AMOSYNC_WEBHOK_SECRET": "x",
        "AMOSYNC_DATABASE_URL": "sqlite:///x.db",
        "amosync_log_level": "INFO",  # pydantic-settings reads names case-insensitively
        "AMOSYNC_SOMETHING_ELSE_ENTIRELY": "1",
        "PATH": "/bin",
    }

    found = {u.name: (u.source, u.closest) for u in unknown_variables(environ, env_file)}

    assert {
        "AMOSYNC_WEBHOK_SECRET": ("environment", "AMOSYNC_WEBHOOK_SECRET"),
        "AMOSYNC_SOMETHING_ELSE_ENTIRELY": ("environment", None),
        "AMOSYNC_RENTPROG_FEILD_ID": (str(env_file), "AMOSYNC_RENTPROG_FIELD_ID"),
    } == found


def test_tools_variables_and_a_missing_env_file_are_fine(tmp_path: Path) -> None:
    environ = dict.fromkeys(NOT_SETTINGS, "1")

    assert [] == unknown_variables(environ, tmp_path / "missing.env")
    assert "AMOSYNC_TEST_PG_URL" in NOT_SETTINGS


def test_description_names_source_and_guess(tmp_path: Path) -> None:
    (found,) = unknown_variables({"AMOSYNC_PROT": "1"}, None)

    assert "AMOSYNC_PROT (in environment) is not an amosync setting" in found.describe()
    assert "did you mean AMOSYNC_PORT?" in found.describe()
