"""Issue #19: a short or placeholder webhook secret / admin token is refused at start-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from amosync.settings import Settings
from tests.e2e.test_cli import AMOSYNC, env_for

STRONG = "9f86d081884c7d659a2feaa0c55ad015"


@pytest.mark.parametrize("field", ["webhook_secret", "admin_token"])
@pytest.mark.parametrize(
    "value", ["CHANGE-ME", "change-me", "short-secret", "x" * 15, "CHANGE-ME-CHANGE-ME-0"]
)
def test_short_or_placeholder_secret_is_refused(field: str, value: str) -> None:
    """`CHANGE-ME` (the shipped example's value), anything under 16 characters, and an
    example's placeholder padded to length are all refused, without echoing the value."""
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{field: value})  # type: ignore[arg-type]

    (error,) = caught.value.errors()
    assert (field,) == error["loc"]
    assert "openssl rand -hex 16" in error["msg"]
    assert value not in error["msg"]


@pytest.mark.parametrize("field", ["webhook_secret", "admin_token"])
def test_sixteen_random_characters_or_none_are_accepted(field: str) -> None:
    assert (
        STRONG
        == getattr(
            Settings(_env_file=None, **{field: STRONG}),  # type: ignore[arg-type]
            field,
        ).get_secret_value()
    )
    assert None is getattr(Settings(_env_file=None), field)


@pytest.mark.parametrize("command", [["serve"], ["worker", "--once"], ["doctor"]])
@pytest.mark.parametrize("variable", ["AMOSYNC_WEBHOOK_SECRET", "AMOSYNC_ADMIN_TOKEN"])
def test_commands_exit_2_naming_the_variable_and_how_to_make_one(
    command: list[str], variable: str, tmp_path: Path
) -> None:
    """serve and worker refuse to start (exit 2); doctor says the same and how to generate."""
    env = {**env_for(f"sqlite:///{tmp_path}/a.db", "http://127.0.0.1:9"), variable: "CHANGE-ME"}
    done = subprocess.run(
        [*AMOSYNC, *command], env=env, capture_output=True, timeout=60, check=False
    )
    err = done.stderr.decode()

    assert 2 == done.returncode, err
    assert variable in err
    assert "placeholder" in err
    assert "openssl rand -hex 16" in err
    assert "secrets.token_hex(16)" in err
    assert not (tmp_path / "a.db").exists()
