"""amoCRM's account webhook subscriptions (`/api/v4/webhooks`, at most 100).

A subscription is a destination URL plus the list of events ("settings") amoCRM posts to
it. Subscribing the same destination again updates its settings and re-enables it when
amoCRM switched it off after too many failed deliveries (>100 in 2 hours).

Our destination carries the webhook secret in its path, so it is a secret itself: callers
log and print only `mask_url(...)` of it, and the client sends it in bodies and query
strings, which are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from amosync.amocrm.client import AmoClient
from amosync.errors import RequestRejected
from amosync.l10n.catalog import N_
from amosync.settings import Settings

WEBHOOKS_PATH = "/api/v4/webhooks"
MAX_SUBSCRIPTIONS = 100  # per account, amoCRM's documented limit

# What amosync syncs: deals, contacts and companies. Companies arrive under the `contacts`
# key of the body, but amoCRM subscribes them by their own names.
SUBSCRIBED_SETTINGS: tuple[str, ...] = (
    "add_lead",
    "update_lead",
    "status_lead",
    "responsible_lead",
    "delete_lead",
    "restore_lead",
    "add_contact",
    "update_contact",
    "delete_contact",
    "restore_contact",
    "add_company",
    "update_company",
    "delete_company",
    "restore_company",
)
WEBHOOK_PATH_PREFIX = "/amocrm/"


@dataclass(frozen=True)
class Subscription:
    """One webhook of the account, as `GET /api/v4/webhooks` describes it."""

    id: int | None
    destination: str
    disabled: bool
    settings: tuple[str, ...]
    sort: int | None = None
    created_at: int | None = None
    updated_at: int | None = None

    def missing_settings(self, wanted: Sequence[str] = SUBSCRIBED_SETTINGS) -> list[str]:
        """The events amosync needs that this subscription does not send."""
        have = set(self.settings)
        return [name for name in wanted if name not in have]


def our_destination(settings: Settings) -> str | None:
    """`{public_url}/amocrm/{secret}`, or None until both settings are there."""
    secret = settings.webhook_secret_text
    if settings.public_url is None or secret is None:
        return None
    return f"{settings.public_url}{WEBHOOK_PATH_PREFIX}{secret}"


def parse_subscription(item: dict[str, Any]) -> Subscription:
    """A subscription from its API object; unknown or odd fields are tolerated."""
    raw_settings = item.get("settings")
    names = (
        tuple(s for s in raw_settings if isinstance(s, str))
        if isinstance(raw_settings, list)
        else ()
    )
    return Subscription(
        id=_int(item.get("id")),
        destination=str(item.get("destination") or ""),
        # Seen as a JSON bool; accept the string/number forms other endpoints use too.
        disabled=item.get("disabled") in (True, 1, "1", "true"),
        settings=names,
        sort=_int(item.get("sort")),
        created_at=_int(item.get("created_at")),
        updated_at=_int(item.get("updated_at")),
    )


async def list_subscriptions(
    client: AmoClient, destination: str | None = None
) -> list[Subscription]:
    """Every subscription of the account, or only the one for `destination`.

    The filter is applied here as well: should amoCRM ignore `filter[destination]`, the
    answer is still only the subscription asked for.
    """
    params: list[tuple[str, str | int | float | bool | None]] = []
    if destination is not None:
        params.append(("filter[destination]", destination))
    body = await client.get_json(WEBHOOKS_PATH, params)
    if body is None:  # 204: no subscriptions at all
        return []
    embedded = body.get("_embedded")
    items = embedded.get("webhooks") if isinstance(embedded, dict) else None
    if not isinstance(items, list):
        raise RequestRejected(
            f"GET {WEBHOOKS_PATH}: response has no _embedded.webhooks list", status=200
        )
    found = [parse_subscription(i) for i in items if isinstance(i, dict)]
    if destination is not None:
        found = [s for s in found if s.destination == destination]
    return found


async def subscribe(
    client: AmoClient,
    destination: str,
    events: Sequence[str] = SUBSCRIBED_SETTINGS,
    sort: int = 10,
) -> Subscription:
    """Subscribe `destination` (or update and re-enable it); amoCRM answers 200 or 201."""
    body = {"destination": destination, "settings": list(events), "sort": sort}
    answer = await client.send_json("POST", WEBHOOKS_PATH, body)
    if answer is None:
        # Not documented, but harmless: read back what amoCRM stored.
        stored = await list_subscriptions(client, destination)
        if not stored:
            raise RequestRejected(f"POST {WEBHOOKS_PATH}: nothing stored for the URL", status=200)
        return stored[0]
    return parse_subscription(answer)


async def unsubscribe(client: AmoClient, destination: str) -> bool:
    """Remove the subscription of `destination` (amoCRM answers 204); False when there was
    none (404: what amoCRM answers for an unknown URL is not documented, so both count)."""
    try:
        await client.send_json("DELETE", WEBHOOKS_PATH, {"destination": destination})
    except RequestRejected as exc:
        if exc.status == 404:
            return False
        raise
    return True


# -- checking a URL before subscribing it --------------------------------------------------

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class DestinationCheck:
    """Why a URL cannot be subscribed (`error`), or should not be without a second thought."""

    error: str | None = None
    mismatch: str | None = None


def check_destination(url: str, secret: str) -> DestinationCheck:
    """amoCRM posts only to public HTTPS URLs, and our receiver answers 403 to any path whose
    secret is not ours, which would get the webhook disabled after 100 failures."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        problem = N_("not an absolute http(s) URL: {url}")
        return DestinationCheck(error=problem.format(url=mask_url(url, secret)))
    if parts.scheme != "https" and host not in _LOCAL_HOSTS:
        return DestinationCheck(
            error=N_(
                "amoCRM delivers webhooks only to HTTPS URLs: put amosync behind a reverse "
                "proxy with a certificate and use https:// (plain http is allowed for localhost)"
            )
        )
    if parts.username or parts.password:
        return DestinationCheck(error=N_("the URL must not contain a user name or password"))
    given = parts.path.rpartition(WEBHOOK_PATH_PREFIX)[2]
    if WEBHOOK_PATH_PREFIX not in parts.path or given != secret:
        return DestinationCheck(
            mismatch=N_(
                "the URL does not end in /amocrm/<AMOSYNC_WEBHOOK_SECRET>: amosync "
                "would answer 403 to every delivery and amoCRM would disable the webhook"
            )
        )
    return DestinationCheck()


# -- showing URLs without their secrets ----------------------------------------------------

# A path segment that looks like a key: long, or mixing letters and digits. Short words
# such as `amocrm`, `hooks` or `v1` stay readable.
_TOKENISH = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[\w\-.~%]{8,}$|^[\w\-.~%]{20,}$")


def mask_url(url: str, secret: str | None = None) -> str:
    """The URL with anything secret-looking cut to its first 4 characters plus `…`.

    Our own secret is always masked; other integrations' URLs often carry theirs in a path
    segment or the query (`?secret=…`), so those are masked by shape. Host and the readable
    parts of the path stay, so the user can still tell subscriptions apart.
    """
    parts = urlsplit(url)
    segments = [
        _cut(seg) if (secret and seg == secret) or _TOKENISH.match(seg) else seg
        for seg in parts.path.split("/")
    ]
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(f"{quote(k, safe='[]')}={_cut(v)}" for k, v in pairs)
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never show user:password@
    return urlunsplit((parts.scheme, netloc, "/".join(segments), query, ""))


def _cut(value: str) -> str:
    return value[:4] + "…" if len(value) > 4 else "…"


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
