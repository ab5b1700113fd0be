"""cli/usage_l10n.py's English templates are the libraries' own words: a typer or pydantic
upgrade that rewords one makes that message English again under AMOSYNC_LANG=ru, so it
fails here first."""

from __future__ import annotations

import re
from typing import cast

import pydantic_core
import pytest
from pydantic_core.core_schema import ErrorType

from amosync.cli.usage_l10n import VALUES, translated
from amosync.l10n.catalog import gettext_for

# a value for every field pydantic's templates name
CONTEXT = {"ge": 1, "le": 1, "gt": 1, "lt": 1}


@pytest.mark.parametrize("kind", sorted(VALUES))
def test_value_templates_are_pydantics(kind: str) -> None:
    fields = {k: v for k, v in CONTEXT.items() if f"{{{k}}}" in VALUES[kind]}
    assert (
        VALUES[kind]
        == pydantic_core.PydanticKnownError(cast(ErrorType, kind), fields).message_template
    )


@pytest.mark.parametrize(
    ("english", "russian"),
    [
        ("No such option: --foo", "Нет такого параметра: --foo"),
        ("Option '--port' requires 2 arguments.", "Параметру '--port' нужно значений: 2."),
        ("Got unexpected extra argument(s) (status done)", "Лишние аргументы: 'status done'"),
        ("something typer says one day", "something typer says one day"),
    ],
)
def test_a_message_is_rebuilt_with_its_values_as_typed(english: str, russian: str) -> None:
    # typed values stay as typed, even one that is a word of the catalogue ("status")
    assert russian == translated(english, gettext_for("ru"))
    assert not re.search("[А-я]", translated(english, gettext_for("en")))
