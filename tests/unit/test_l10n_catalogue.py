"""The message catalogue is complete, compiled and speaks the glossary's words.

A fresh extraction (Babel, the same as scripts/l10n) must find every marked string in ru.po,
translated, not fuzzy, with the same `{fields}`; the shipped .mo must hold exactly ru.po;
and the Russian texts use docs/GLOSSARY.md's term wherever the English says the term.
"""

from __future__ import annotations

import gettext
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from amosync.cli.help_l10n import help_texts
from amosync.cli.main import app
from amosync.inbox.activity import Activity
from amosync.l10n.phrases import translate
from amosync.l10n.zone import local_when, parse_zone
from amosync.web.activity import chart_svg

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "amosync"
MESSAGES = PACKAGE / "l10n" / "locale" / "ru" / "LC_MESSAGES"
GLOSSARY = ROOT / "docs" / "GLOSSARY.md"
FIELD = re.compile(r"\{\w*\}")


def _extracted() -> set[str]:
    """The marked strings, and the CLI's `--help` texts (typer's help= and docstrings, which
    scripts/l10n adds from the built command tree)."""
    found = extract_from_dir(
        str(PACKAGE), keywords={"N_": None, "_": None}, method_map=[("**.py", "python")]
    )
    # Without a plural keyword (ngettext) every message is one string, never a tuple.
    marked = {msg for _, _, msg, _, _ in found if isinstance(msg, str)}
    return marked | set(help_texts(typer.main.get_command(app)))


def _ru() -> Catalog:
    with (MESSAGES / "amosync.po").open("rb") as f:
        return read_po(f, locale="ru")


def test_every_user_facing_string_has_a_russian_translation() -> None:
    catalogue = _ru()
    extracted = _extracted()
    assert extracted, "nothing extracted: is Babel looking at the right place?"
    missing = sorted(m for m in extracted if m not in catalogue or not catalogue[m].string)
    fuzzy = sorted(m for m in extracted if m in catalogue and catalogue[m].fuzzy)
    assert [] == missing, "run scripts/l10n and translate these in ru.po"
    assert [] == fuzzy, "check these translations in ru.po and drop their fuzzy flag"


def test_translations_keep_every_field() -> None:
    broken = [
        (m.id, m.string)
        for m in _ru()
        if m.id and sorted(FIELD.findall(str(m.id))) != sorted(FIELD.findall(str(m.string)))
    ]
    assert [] == broken


def test_shipped_mo_is_compiled_from_the_po() -> None:
    with (MESSAGES / "amosync.mo").open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    shipped = {k: v for k, v in compiled._catalog.items() if k}  # type: ignore[attr-defined]
    expected = {str(m.id): str(m.string) for m in _ru() if m.id and m.string and not m.fuzzy}
    assert expected == shipped, "the .mo is stale: run scripts/l10n"


def _glossary() -> list[tuple[list[str], str, list[str]]]:
    rows = []
    for line in GLOSSARY.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("English", "---") or set(cells[0]) <= {"-"}:
            continue
        english = [e.split("(")[0].strip() for e in cells[0].split(",")]
        banned = [b.strip() for b in cells[3].split(",") if b.strip()]
        rows.append((english, cells[2], banned))
    return rows


def _prose(english: str) -> str:
    """What the English says in words: no commands, options, settings or fields."""
    text = re.sub(r"`[^`]*`", " ", english)
    text = re.sub(r"--[\w-]+|AMOSYNC_\w+|\{\w*\}", " ", text)
    return re.sub(r"\b\w+_\w+\b", " ", text)  # ids such as webhook_subscription


def test_russian_texts_use_the_glossary_terms() -> None:
    rows = _glossary()
    assert any("catch-up" in english for english, _, _ in rows)
    wrong = []
    for message in _ru():
        if not message.id:
            continue
        english, russian = _prose(str(message.id)).lower(), str(message.string).lower()
        for terms, stem, banned in rows:
            said = any(re.search(rf"\b{re.escape(t.lower())}", english) for t in terms)
            if stem and said and stem.lower() not in russian:
                wrong.append((message.id, f"should say {stem}…"))
            wrong += [
                (message.id, f"says {b}")
                for b in banned
                if re.search(rf"\b{re.escape(b.lower())}", russian)
            ]
    assert [] == wrong


@pytest.mark.parametrize(
    ("english", "russian"),
    [
        ("1 alive", "работает: 1"),
        ("3 pending, oldest 12 s", "ожидают: 3, самое старое 12 с"),
        (
            "refused (reauth_required): re-authorise with `amosync auth login` (OAuth) or a "
            "new AMOSYNC_AMOCRM_LONG_LIVED_TOKEN; events wait, pending",
            "отказано (нужна повторная авторизация): авторизуйтесь заново: `amosync auth login` "
            "(OAuth) или новый долгосрочный токен в AMOSYNC_AMOCRM_LONG_LIVED_TOKEN; события "
            "ждут в очереди",
        ),
        ("answered 200 42 s ago", "ответил 200 42 с назад"),
        ("something nobody wrote a template for", "something nobody wrote a template for"),
    ],
)
def test_composed_english_texts_are_translated_piece_by_piece(english: str, russian: str) -> None:
    assert russian == translate(english, "ru")
    assert english == translate(english, "en")


def test_times_read_in_the_chosen_zone() -> None:
    at = datetime(2026, 12, 7, 3, 30, 19, tzinfo=UTC)
    assert "2026-12-07 06:30:19 MSK (UTC+03:00)" == local_when(at, parse_zone("Europe/Moscow"))
    assert "2026-12-07 03:30:19 UTC" == local_when(at, parse_zone("UTC"))
    assert "2026-12-07 09:00:19 IST (UTC+05:30)" == local_when(at, parse_zone("Asia/Kolkata"))
    moscow = parse_zone("Europe/Moscow")
    assert "пауза по лимиту запросов (429) до 2026-12-07 06:30:00 MSK (UTC+03:00)" == translate(
        "rate-limit pause (429) until 2026-12-07 03:30:00 UTC", "ru", moscow
    )
    with pytest.raises(ValueError, match="Mars/Base"):
        parse_zone("Mars/Base")


def test_chart_hour_ticks_read_in_the_chosen_zone() -> None:
    activity = Activity(datetime(2026, 12, 7, 9, 30, tzinfo=UTC), [0] * 120, [0] * 120)
    utc = chart_svg(activity, {"chart_title": "x"})
    moscow = chart_svg(activity, {"chart_title": "x"}, zone=parse_zone("Europe/Moscow"))
    assert ">10:00</text>" in utc
    assert ">13:00</text>" in moscow
