"""The fake's OAuth consent page, `/oauth`: where `amosync auth url` points when
amoCRM is the local fake.

`GET /oauth?client_id=…&state=…` shows "Allow" / "Deny" for the integration. Allowing
redirects (302) to the integration's redirect URI with `code`, `state`, `referer` (the host
the consent was given on) and `client_id`, as amoCRM does; denying with
`error=access_denied&state=…`. The code is valid 20 minutes and single-use
(`FakeOAuth.issue_code`). An unknown `client_id` gets a 400 page and no redirect.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from amosync.testing.fake_state import FakeAmoState

MAX_STATE = 512  # amosync sends ~22 characters; anything far longer is not a real client
MAX_FORM_BYTES = 4096


def consent_route(state: FakeAmoState) -> Route:
    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            form = dict(request.query_params)
        else:
            raw = await request.body()
            if len(raw) > MAX_FORM_BYTES:
                return _page("Request too large", 413)
            form = _form(raw)
        client_id, wanted_state = form.get("client_id", ""), form.get("state", "")
        oauth = state.oauth
        if client_id != oauth.client_id:
            return _page(f"Unknown integration {escape(client_id[:64])}.", 400)
        if len(wanted_state) > MAX_STATE:
            return _page("The state parameter is too long.", 400)
        if request.method == "GET":
            return _consent_form(client_id, wanted_state, state.account_name)
        if form.get("answer") == "allow":
            query = {
                "code": oauth.issue_code(),
                "state": wanted_state,
                "referer": request.url.hostname or "",
                "client_id": client_id,
            }
        else:
            query = {"error": "access_denied", "state": wanted_state}
        return RedirectResponse(f"{oauth.redirect_uri}?{urlencode(query)}", status_code=302)

    return Route("/oauth", endpoint, methods=["GET", "POST"])


def _form(raw: bytes) -> dict[str, str]:
    # An HTML form posts application/x-www-form-urlencoded; no multipart parser needed.
    return dict(parse_qsl(raw.decode("utf-8", "replace"), max_num_fields=20))


def _consent_form(client_id: str, wanted_state: str, account: str) -> Response:
    body = f"""<h1>Fake amoCRM: allow access?</h1>
<p>The integration <code>{escape(client_id)}</code> asks for access to the account
<b>{escape(account)}</b>.</p>
<form method="post" action="/oauth">
<input type="hidden" name="client_id" value="{escape(client_id)}">
<input type="hidden" name="state" value="{escape(wanted_state)}">
<button name="answer" value="allow">Allow</button>
<button name="answer" value="deny">Deny</button>
</form>"""
    return _page(body, 200)


def _page(body: str, status: int) -> Response:
    head = '<!doctype html><html><head><meta charset="utf-8"><title>Fake amoCRM</title></head>'
    html = f"{head}<body>{body}</body></html>"
    return HTMLResponse(html, status)
