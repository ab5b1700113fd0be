"""The fake's control panel, `/_fake/…`: what a person would do in amoCRM's UI.

Each action changes the fake account and delivers the webhooks amoCRM would send for it
(`fake_delivery`). Requests may be JSON (the `amosync dev fake-amocrm …` CLI) or an HTML
form (the page at `/_fake/`, which is answered with a redirect back to the page).

    GET  /_fake/                        the page
    POST /_fake/leads                   create a deal           → add_lead
                                        (name, price, rentprog_id, contact_id: its main contact)
    POST /_fake/leads/{id}              edit a deal             → update_lead
    POST /_fake/leads/{id}/move         move to another stage   → status_lead + update_lead
    POST /_fake/leads/{id}/delete       delete a deal           → delete_lead
    POST /_fake/contacts                create a contact        → add_contact
                                        (name, phone, email)
    POST /_fake/contacts/{id}           edit a contact          → update_contact
    POST /_fake/contacts/{id}/delete    delete a contact        → delete_contact
    POST /_fake/webhooks/disable        disable a subscription {"destination": url}
    POST /_fake/tokens                  a new long-lived token {"days": 365}
    GET  /_fake/deliveries              delivery counters per destination
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from amosync.testing.fake_errors import json_response
from amosync.testing.fake_fields import RENTPROG_FIELD_ID, rentprog_field
from amosync.testing.fake_webhook_form import (
    CONTACT_EVENTS,
    LEAD_EVENTS,
    ContactAction,
    LeadAction,
    account_pairs,
    contact_body,
    lead_body,
)

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

MAX_BODY = 16_384
MAX_TEXT = 255
MAX_TOKEN_DAYS = 5 * 366  # amoCRM offers 1 day to 5 years

Endpoint = Callable[[Request], Awaitable[Response]]


class _Invalid(ValueError):
    """A control request we refuse with 400 and this message."""


def control_routes(state: FakeAmoState) -> list[BaseRoute]:
    c = _Control(state)
    return [
        Route("/_fake/", c.page, methods=["GET"]),
        Route("/_fake/deliveries", c.deliveries, methods=["GET"]),
        Route("/_fake/leads", c.action(c.create_lead), methods=["POST"]),
        Route("/_fake/leads/{id:int}", c.action(c.update_lead), methods=["POST"]),
        Route("/_fake/leads/{id:int}/move", c.action(c.move_lead), methods=["POST"]),
        Route("/_fake/leads/{id:int}/delete", c.action(c.delete_lead), methods=["POST"]),
        Route("/_fake/contacts", c.action(c.create_contact), methods=["POST"]),
        Route("/_fake/contacts/{id:int}", c.action(c.update_contact), methods=["POST"]),
        Route("/_fake/contacts/{id:int}/delete", c.action(c.delete_contact), methods=["POST"]),
        Route("/_fake/webhooks/disable", c.action(c.disable_webhook), methods=["POST"]),
        Route("/_fake/tokens", c.action(c.new_token), methods=["POST"]),
    ]


Action = Callable[[dict[str, str], int | None], dict[str, Any]]


class _Control:
    def __init__(self, state: FakeAmoState) -> None:
        self.state = state

    def action(self, handler: Action) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            is_form = content_type.startswith("application/x-www-form-urlencoded")
            try:
                fields = await _fields(request, is_form)
                raw_id = request.path_params.get("id")
                answer = handler(fields, int(raw_id) if raw_id is not None else None)
            except _Invalid as exc:
                return _answer({"error": str(exc)}, 400, is_form)
            except KeyError as exc:
                return _answer({"error": str(exc.args[0] if exc.args else exc)}, 404, is_form)
            return _answer(answer, 200, is_form)

        return endpoint

    # -- deals ---------------------------------------------------------------------------

    def create_lead(self, f: dict[str, str], _: int | None) -> dict[str, Any]:
        state = self.state
        kwargs: dict[str, Any] = {"name": _text(f, "name") or None, "price": _int(f, "price", 0)}
        if _text(f, "status_id"):
            kwargs["status_id"] = _int(f, "status_id")
        if _text(f, "pipeline_id"):
            kwargs["pipeline_id"] = _int(f, "pipeline_id")
        if _text(f, "rentprog_id"):
            kwargs["custom_fields_values"] = [rentprog_field(_text(f, "rentprog_id"))]
        if _text(f, "contact_id"):
            kwargs["contacts"] = [(self._live_contact(_int(f, "contact_id")), True)]
        lead = state.add_lead(**kwargs)
        return {"lead": lead, "queued": self._lead_hook("add", lead)}

    def update_lead(self, f: dict[str, str], lead_id: int | None) -> dict[str, Any]:
        assert lead_id is not None
        changes: dict[str, Any] = {}
        if "name" in f:
            changes["name"] = _text(f, "name")
        if _text(f, "price"):
            changes["price"] = _int(f, "price")
        if "rentprog_id" in f:
            changes["custom_fields_values"] = self._with_rentprog(lead_id, _text(f, "rentprog_id"))
        if not changes:
            raise _Invalid("nothing to change: give name, price or rentprog_id")
        lead = self.state.update_lead(lead_id, **changes)
        return {"lead": lead, "queued": self._lead_hook("update", lead)}

    def move_lead(self, f: dict[str, str], lead_id: int | None) -> dict[str, Any]:
        assert lead_id is not None
        if not _text(f, "status_id"):
            raise _Invalid("status_id is required")
        state = self.state
        with state.lock:
            before = state.table("leads").get(lead_id)
            if before is None or before.is_deleted:
                raise KeyError(f"no live leads with id {lead_id}")
            old_status, old_pipeline = before.fields["status_id"], before.fields["pipeline_id"]
            changes = {"status_id": _int(f, "status_id")}
            if _text(f, "pipeline_id"):
                changes["pipeline_id"] = _int(f, "pipeline_id")
            lead = state.update_lead(lead_id, **changes)
        old_pipeline_id = old_pipeline if lead["pipeline_id"] != old_pipeline else None
        queued = self._lead_hook("status", lead, old_status, old_pipeline_id)
        queued += self._lead_hook("update", lead, old_status, old_pipeline_id)
        return {"lead": lead, "queued": queued}

    def delete_lead(self, _: dict[str, str], lead_id: int | None) -> dict[str, Any]:
        assert lead_id is not None
        with self.state.lock:
            live = self.state.table("leads").get(lead_id)
            if live is None or live.is_deleted:
                raise KeyError(f"no live leads with id {lead_id}")
            ids = {"id": lead_id, **{k: live.fields[k] for k in ("status_id", "pipeline_id")}}
            self.state.delete_lead(lead_id)
        return {"lead": ids, "queued": self._lead_hook("delete", ids)}

    # -- contacts ------------------------------------------------------------------------

    def create_contact(self, f: dict[str, str], _: int | None) -> dict[str, Any]:
        phone, email = _text(f, "phone"), _text(f, "email")
        contact = self.state.add_contact(
            name=_text(f, "name") or None,
            phones=[phone] if phone else [],
            emails=[email] if email else [],
        )
        return {"contact": contact, "queued": self._contact_hook("add", contact)}

    def update_contact(self, f: dict[str, str], contact_id: int | None) -> dict[str, Any]:
        assert contact_id is not None
        changes: dict[str, Any] = {}
        if "name" in f:
            changes["name"] = _text(f, "name")
        if "phone" in f:
            changes["phones"] = [_text(f, "phone")] if _text(f, "phone") else []
        if not changes:
            raise _Invalid("nothing to change: give name or phone")
        contact = self.state.update_contact(contact_id, **changes)
        return {"contact": contact, "queued": self._contact_hook("update", contact)}

    def delete_contact(self, _: dict[str, str], contact_id: int | None) -> dict[str, Any]:
        assert contact_id is not None
        self.state.delete_contact(contact_id)
        contact = {"id": contact_id}
        return {"contact": contact, "queued": self._contact_hook("delete", contact)}

    # -- subscriptions and tokens --------------------------------------------------------

    def disable_webhook(self, f: dict[str, str], _: int | None) -> dict[str, Any]:
        destination = _text(f, "destination", limit=2048)
        if not destination:
            raise _Invalid("destination is required")
        try:
            self.state.webhooks.disable(destination)
        except KeyError:
            raise KeyError("no subscription with that destination") from None
        return {"disabled": destination}

    def new_token(self, f: dict[str, str], _: int | None) -> dict[str, Any]:
        days = _int(f, "days", 365)
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise _Invalid(f"days must be 1..{MAX_TOKEN_DAYS}")
        token = self.state.oauth.issue_long_lived(days)
        with self.state.lock:
            self.state.tokens.add(token)
        return {"token": token, "days": days}

    # -- read-only -----------------------------------------------------------------------

    async def deliveries(self, _: Request) -> Response:
        state = self.state
        return json_response(state.deliveries.as_json(state.webhooks))

    async def page(self, request: Request) -> Response:
        return HTMLResponse(_page_html(self.state, request.query_params.get("done", "")))

    # -- internals -----------------------------------------------------------------------

    def _account(self) -> list[tuple[str, str]]:
        s = self.state
        return account_pairs(s.account_id, s.subdomain, s.base_url)

    def _lead_hook(
        self,
        action: LeadAction,
        lead: dict[str, Any],
        old_status: int | None = None,
        old_pipeline: int | None = None,
    ) -> int:
        body = lead_body(
            action, lead, self._account(), old_status_id=old_status, old_pipeline_id=old_pipeline
        )
        return self.state.deliveries.publish(self.state.webhooks, LEAD_EVENTS[action], body)

    def _contact_hook(self, action: ContactAction, contact: dict[str, Any]) -> int:
        body = contact_body(action, contact, self._account())
        return self.state.deliveries.publish(self.state.webhooks, CONTACT_EVENTS[action], body)

    def _live_contact(self, contact_id: int) -> int:
        with self.state.lock:
            contact = self.state.table("contacts").get(contact_id)
            if contact is None or contact.is_deleted:
                raise KeyError(f"no live contacts with id {contact_id}")
        return contact_id

    def _with_rentprog(self, lead_id: int, value: str) -> list[dict[str, Any]] | None:
        with self.state.lock:
            lead = self.state.table("leads").get(lead_id)
            if lead is None:
                raise KeyError(f"no live leads with id {lead_id}")
            others = [
                f
                for f in lead.fields.get("custom_fields_values") or []
                if f.get("field_id") != RENTPROG_FIELD_ID
            ]
        return [*others, rentprog_field(value)] if value else others or None


async def _fields(request: Request, is_form: bool) -> dict[str, str]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise _Invalid(f"body over {MAX_BODY} bytes")
    if is_form:
        try:
            return dict(parse_qsl(raw.decode("utf-8"), max_num_fields=50))
        except (UnicodeDecodeError, ValueError):
            raise _Invalid("the form is not valid") from None
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _Invalid("the body is not JSON") from None
    if not isinstance(data, dict):
        raise _Invalid("the body must be a JSON object")
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


def _text(fields: dict[str, str], name: str, *, limit: int = MAX_TEXT) -> str:
    value = fields.get(name, "").strip()
    if len(value) > limit:
        raise _Invalid(f"{name} is longer than {limit} characters")
    return value


def _int(fields: dict[str, str], name: str, default: int | None = None) -> int:
    value = _text(fields, name)
    if not value and default is not None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _Invalid(f"{name} must be a whole number, got {value[:32]!r}") from None
    if not 0 <= number < 2**53:
        raise _Invalid(f"{name} is out of range")
    return number


def _answer(body: dict[str, Any], status: int, is_form: bool) -> Response:
    if not is_form:
        return json_response(body, status, "application/json")
    done = str(body.get("error") or _summary(body))[:1000]
    return RedirectResponse(f"/_fake/?{urlencode({'done': done})}", status_code=303)


def _summary(body: dict[str, Any]) -> str:
    for kind in ("lead", "contact"):
        if kind in body:
            return f"{kind} {body[kind]['id']}: {body['queued']} webhook(s) queued"
    if "disabled" in body:
        return "subscription disabled"
    # The fake's own test token, shown once like amoCRM shows a new long-lived token.
    return f"long-lived token: {body['token']}" if "token" in body else "done"


def _page_html(state: FakeAmoState, done: str) -> str:
    rows = "".join(
        f"<tr><td>{h.id}</td><td>{escape(h.destination)}</td>"
        f"<td>{'DISABLED' if h.disabled else 'enabled'}</td>"
        f"<td>{escape(', '.join(h.settings))}</td></tr>"
        for h in state.webhooks.all()
    )
    with state.lock:
        leads = [e for e in state.leads.values() if not e.is_deleted][-20:]
        lead_rows = "".join(
            f"<tr><td>{e.id}</td><td>{escape(str(e.fields['name']))}</td>"
            f"<td>{e.fields['status_id']}</td></tr>"
            for e in leads
        )
    note = f"<p><b>{escape(done[:1000])}</b></p>" if done else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Fake amoCRM</title>
</head><body><h1>Fake amoCRM: {escape(state.account_name)}</h1>{note}
<h2>Deals (last 20)</h2><table border="1"><tr><th>id</th><th>name</th><th>stage</th></tr>
{lead_rows}</table>
<h3>Create a deal</h3><form method="post" action="/_fake/leads">
name <input name="name"> price <input name="price" value="0">
RentProg ID <input name="rentprog_id"> <button>Create</button></form>
<h3>Edit, move or delete a deal</h3>
<form method="post" onsubmit="this.action='/_fake/leads/'+this.id_.value">
id <input name="id_"> name <input name="name"> <button>Edit</button></form>
<form method="post" onsubmit="this.action='/_fake/leads/'+this.id_.value+'/move'">
id <input name="id_"> stage (status_id) <input name="status_id"> <button>Move</button></form>
<form method="post" onsubmit="this.action='/_fake/leads/'+this.id_.value+'/delete'">
id <input name="id_"> <button>Delete</button></form>
<h3>Create a contact</h3><form method="post" action="/_fake/contacts">
name <input name="name"> phone <input name="phone"> <button>Create</button></form>
<h2>Webhook subscriptions</h2><table border="1">
<tr><th>id</th><th>destination</th><th>state</th><th>events</th></tr>{rows}</table>
<form method="post" action="/_fake/webhooks/disable">
destination <input name="destination" size="60"> <button>Disable</button></form>
<p><a href="/_fake/deliveries">delivery counters (JSON)</a></p>
<h2>Long-lived token</h2><form method="post" action="/_fake/tokens">
days <input name="days" value="365"> <button>Generate</button></form>
</body></html>"""
