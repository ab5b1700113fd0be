"""`amosync dev fake-amocrm lead|contact|webhook|token …`: act on a running fake amoCRM.

These do over HTTP (`/_fake/…` on the fake) what a person does in amoCRM's UI: create, edit,
move or delete a deal or contact (the fake then delivers the webhooks amoCRM would send to
its subscriptions), disable a webhook subscription, generate a long-lived token.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import orjson
import typer
from pydantic import ValidationError

from amosync.cli.common import fail
from amosync.l10n import N_
from amosync.l10n.cli import _
from amosync.settings import Settings

DEFAULT_FAKE_URL = "http://127.0.0.1:8081"
URL_OPTION = typer.Option(
    "--url",
    envvar="AMOSYNC_AMOCRM_BASE_URL",
    help="The running fake (default: AMOSYNC_AMOCRM_BASE_URL from the environment or .env, "
    "else http://127.0.0.1:8081).",
)
JSON_OPTION = typer.Option("--json", help="Print the fake's whole answer as JSON.")
WAIT_SECONDS = 10.0

# What each action prints, by (kind, what was done): whole sentences, so that a language
# with genders (сделка создана, контакт создан) can say them.
DONE: dict[tuple[str, str], str] = {
    ("lead", "created"): N_("lead {id} created; {n} webhook(s) sent"),
    ("lead", "updated"): N_("lead {id} updated; {n} webhook(s) sent"),
    ("lead", "moved"): N_("lead {id} moved; {n} webhook(s) sent"),
    ("lead", "deleted"): N_("lead {id} deleted; {n} webhook(s) sent"),
    ("contact", "created"): N_("contact {id} created; {n} webhook(s) sent"),
    ("contact", "updated"): N_("contact {id} updated; {n} webhook(s) sent"),
    ("contact", "deleted"): N_("contact {id} deleted; {n} webhook(s) sent"),
}

lead_app = typer.Typer(help="Create, edit, move or delete a deal.", no_args_is_help=True)
contact_app = typer.Typer(help="Create, edit or delete a contact.", no_args_is_help=True)
webhook_app = typer.Typer(help="The fake's webhook subscriptions.", no_args_is_help=True)

Url = Annotated[str | None, URL_OPTION]
Json = Annotated[bool, JSON_OPTION]
Name = Annotated[str | None, typer.Option(help="The name.")]


@lead_app.command("create")
def lead_create(
    url: Url = None,
    name: Name = None,
    price: Annotated[int, typer.Option(min=0, help="The price.")] = 0,
    rentprog_id: Annotated[str | None, typer.Option(help="The 'RentProg ID' field.")] = None,
    status_id: Annotated[int | None, typer.Option(help="The stage.")] = None,
    as_json: Json = False,
) -> None:
    """Create a deal (sends add_lead)."""
    body = {"name": name, "price": price, "rentprog_id": rentprog_id, "status_id": status_id}
    _act(url, "/_fake/leads", body, as_json, "lead", "created")


@lead_app.command("update")
def lead_update(
    lead_id: Annotated[int, typer.Argument(help="The deal's id.")],
    url: Url = None,
    name: Name = None,
    price: Annotated[int | None, typer.Option(min=0, help="The price.")] = None,
    rentprog_id: Annotated[str | None, typer.Option(help="The 'RentProg ID' field.")] = None,
    as_json: Json = False,
) -> None:
    """Edit a deal (sends update_lead)."""
    body = {"name": name, "price": price, "rentprog_id": rentprog_id}
    _act(url, f"/_fake/leads/{lead_id}", body, as_json, "lead", "updated")


@lead_app.command("move")
def lead_move(
    lead_id: Annotated[int, typer.Argument(help="The deal's id.")],
    status_id: Annotated[int, typer.Option(help="The new stage (142 won, 143 lost).")],
    url: Url = None,
    pipeline_id: Annotated[int | None, typer.Option(help="Another pipeline.")] = None,
    as_json: Json = False,
) -> None:
    """Move a deal to another stage (sends status_lead and update_lead)."""
    body = {"status_id": status_id, "pipeline_id": pipeline_id}
    _act(url, f"/_fake/leads/{lead_id}/move", body, as_json, "lead", "moved")


@lead_app.command("delete")
def lead_delete(
    lead_id: Annotated[int, typer.Argument(help="The deal's id.")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Delete a deal (sends delete_lead)."""
    _act(url, f"/_fake/leads/{lead_id}/delete", {}, as_json, "lead", "deleted")


@contact_app.command("create")
def contact_create(
    url: Url = None,
    name: Name = None,
    phone: Annotated[str | None, typer.Option(help="A phone number.")] = None,
    as_json: Json = False,
) -> None:
    """Create a contact (sends add_contact)."""
    _act(url, "/_fake/contacts", {"name": name, "phone": phone}, as_json, "contact", "created")


@contact_app.command("update")
def contact_update(
    contact_id: Annotated[int, typer.Argument(help="The contact's id.")],
    url: Url = None,
    name: Name = None,
    phone: Annotated[str | None, typer.Option(help="A phone number.")] = None,
    as_json: Json = False,
) -> None:
    """Edit a contact (sends update_contact)."""
    body = {"name": name, "phone": phone}
    _act(url, f"/_fake/contacts/{contact_id}", body, as_json, "contact", "updated")


@contact_app.command("delete")
def contact_delete(
    contact_id: Annotated[int, typer.Argument(help="The contact's id.")],
    url: Url = None,
    as_json: Json = False,
) -> None:
    """Delete a contact (sends delete_contact)."""
    _act(url, f"/_fake/contacts/{contact_id}/delete", {}, as_json, "contact", "deleted")


@webhook_app.command("disable")
def webhook_disable(
    destination: Annotated[str, typer.Argument(help="The subscription's exact URL.")],
    url: Url = None,
) -> None:
    """Disable a subscription, as amoCRM does after too many failed deliveries."""
    _post(url, "/_fake/webhooks/disable", {"destination": destination})
    typer.echo(_("subscription disabled"))


@webhook_app.command("deliveries")
def webhook_deliveries(url: Url = None) -> None:
    """Delivery counters per destination, as JSON."""
    answer = _request(url, "GET", "/_fake/deliveries", None)
    typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())


def token(
    url: Url = None,
    days: Annotated[int, typer.Option(help="Lifetime in days.", min=1, max=1830)] = 365,
) -> None:
    """Generate a long-lived token (a JWT that expires in --days) and print it."""
    typer.echo(_post(url, "/_fake/tokens", {"days": days})["token"])


def _act(
    url: str | None, path: str, body: dict[str, Any], as_json: bool, kind: str, verb: str
) -> None:
    answer = _post(url, path, {k: v for k, v in body.items() if v is not None})
    queued = int(answer.get("queued", 0))
    _wait_delivered(url, queued)
    if as_json:
        typer.echo(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
    else:
        typer.echo(_(DONE[kind, verb]).format(id=answer[kind]["id"], n=queued))


def _wait_delivered(url: str | None, queued: int) -> None:
    # Delivery is asynchronous; wait (bounded) so "sent" means the POSTs were made.
    deadline = time.monotonic() + WAIT_SECONDS
    while queued and time.monotonic() < deadline:
        if _request(url, "GET", "/_fake/deliveries", None).get("pending", 0) == 0:
            return
        time.sleep(0.1)


def _post(url: str | None, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return _request(url, "POST", path, body)


def _fake_url(url: str | None) -> str:
    if url:
        return url
    try:
        # The rehearsal in the setup guide puts the fake's URL in .env: use it from there too.
        configured = Settings().amocrm_base_url
    except ValidationError:
        configured = None
    return configured or DEFAULT_FAKE_URL


def _request(
    given_url: str | None, method: str, path: str, body: dict[str, Any] | None
) -> dict[str, Any]:
    url = _fake_url(given_url)
    target = url.rstrip("/") + path
    try:
        response = httpx.request(method, target, json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        fail(_("cannot reach the fake amoCRM at {url}: {error}").format(url=url, error=exc), 1)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        said = _("{url} answered {n} without JSON: is it the fake amoCRM?")
        fail(said.format(url=url, n=response.status_code), 1)
    if response.status_code >= 400:
        refused = _("the fake refused: {error}")
        fail(refused.format(error=answer.get("error", response.status_code)), 1)
    return answer
