"""`q`: one search box over a deal's name, RentProg ID and id, and its contacts' names,
e-mails and phones; case-insensitive in every alphabet, phones compared by digits.

Case: SQLite's lower(), LIKE and NOCASE fold ASCII only, and PostgreSQL's lower() and ILIKE
fold Cyrillic only when the database's LC_CTYPE knows it (not under "C"). So no folding
function is used at all: the query is turned into a pattern whose every letter is a class
of its cases, "ирина" → `*[Ии][Рр][Ии][Нн][Аа]*`, matched with GLOB on SQLite and `~` on
PostgreSQL. Both are built in (the SQLite CLI and BI tools see nothing amosync registered),
run in C per row, and need no extra column the upsert would have to maintain.

Phones: amoCRM keeps them as typed ("+7 (900) 000-00-01", "8 900 0000001"). The query's
digits are compared with the phone list stripped of the usual separators; an 11-digit
Russian number is compared by its last 10 digits, so +7… and 8… find each other.

Cost: a substring cannot use a B-tree index, so a search reads the deals' and contacts'
text columns once (the deal half and the contact half are two scans; the contact half is
joined back through amocrm_deal_contacts' index). Filters and `limit` still apply, and the
status page asks for at most 20 rows. See docs/READING_DATA.md for measured figures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, String, Text, cast, false, func, or_, select, union

from amosync.db.tables import contacts, deal_contacts, deals
from amosync.web.params import MAX_ID, bounded_int

MAX_Q = 255
MIN_PHONE_DIGITS = 5  # fewer would match most phone numbers
# What people put between a phone's digits, plus the JSON list's quotes; commas stay, so
# digits never run on from one phone of the list into the next.
_PHONE_NOISE = (" ", "-", "(", ")", "+", ".", '"', "\u00a0")
_PHONE_QUERY = re.compile(r"[0-9 ()+.\-\u00a0]+")
_GLOB_SPECIAL = frozenset("*?[]")
_JSON_SYNTAX = frozenset('[]{}",:\\')


def _cases(ch: str) -> list[str]:
    """The one-character case forms of `ch` (ß upper-cases to "SS": not one character)."""
    return sorted({v for v in (ch, ch.lower(), ch.upper()) if len(v) == 1})


def glob_pattern(q: str) -> str:
    """SQLite GLOB matching `q` anywhere, any letter case."""
    out = []
    for ch in q:
        forms = _cases(ch)
        if len(forms) > 1 or ch in _GLOB_SPECIAL:
            out.append("[" + "".join(forms) + "]")  # "[[]", "[*]": a class is literal
        else:
            out.append(ch)
    return "*" + "".join(out) + "*"


def regex_pattern(q: str) -> str:
    """PostgreSQL regular expression matching `q` anywhere, any letter case."""
    out = []
    for ch in q:
        forms = _cases(ch)
        if len(forms) > 1:
            out.append("[" + "".join(forms) + "]")
        elif ch.isalnum():
            out.append(ch)
        else:
            out.append("\\" + ch)  # backslash + non-alphanumeric is that character (ARE)
    return "".join(out)


def phone_digits(q: str) -> str | None:
    """The digits to look for in phones, when `q` is written like (part of) a phone."""
    if not _PHONE_QUERY.fullmatch(q):
        return None
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) < MIN_PHONE_DIGITS:
        return None
    if len(digits) == 11 and digits[0] in "78":
        return digits[1:]  # +7 900… and 8 900… are the same Russian number
    return digits


def _matches(column: Any, q: str, dialect: str) -> ColumnElement[bool]:
    if q.isascii():
        # Both fold ASCII in any locale, and a LIKE costs half a GLOB of classes per row:
        # phones, e-mails and RentProg IDs, the usual searches, take this path.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        result: ColumnElement[bool] = (
            column.like(like, escape="\\")
            if dialect == "sqlite"
            else column.ilike(like, escape="\\")
        )
    elif dialect == "sqlite":
        result = column.op("GLOB")(glob_pattern(q))
    else:
        result = column.op("~")(regex_pattern(q))
    return result


def _joined(columns: Sequence[Any]) -> Any:
    """The columns as one text, so each row costs one pattern match, not one per column
    (the match is most of a search's time). A newline keeps a match from spanning two."""
    joined: Any = func.coalesce(columns[0], "", type_=Text)
    for column in columns[1:]:
        joined = joined.concat("\n").concat(func.coalesce(column, "", type_=Text))
    return joined


def _stripped(column: Any) -> Any:
    for ch in _PHONE_NOISE:
        column = func.replace(column, ch, "")
    return column


def search_condition(q: str, dialect: str) -> ColumnElement[bool]:
    """A WHERE clause on amocrm_deals for the search text `q` (already trimmed, non-empty)."""
    if "\x00" in q:
        return false()  # nothing stored holds NUL (core/nul.py); PostgreSQL refuses it
    person_text: list[Any] = [contacts.c.name]
    if not _JSON_SYNTAX.intersection(q):
        # Searched in the list's JSON text: only a query that cannot match its brackets,
        # quotes and commas instead of an address.
        person_text.append(cast(contacts.c.emails, String))
    person = [_matches(_joined(person_text), q, dialect)]
    digits = phone_digits(q)
    if digits is not None:
        person.append(_stripped(cast(contacts.c.phones, String)).contains(digits))
    own = [_matches(_joined([deals.c.name, deals.c.rentprog_id]), q, dialect)]
    deal_id = bounded_int(q, 1, MAX_ID)
    if deal_id is not None:
        own.append(deals.c.id == deal_id)
    # Ids first, each table read once in storage order: walking amocrm_deals in the order
    # a page wants (synced_at) reads its wide rows at random, 10 times slower at 1M rows.
    # Contacts first, then their deals through the link table's index.
    matching = select(contacts.c.id).where(or_(*person))
    found = union(
        select(deals.c.id).where(or_(*own)),
        select(deal_contacts.c.deal_id).where(deal_contacts.c.contact_id.in_(matching)),
    )
    return deals.c.id.in_(found)
