"""Webhook bodies: the real fixture, and the same body re-addressed to a given lead."""

from __future__ import annotations

from pathlib import Path

from amosync.testing import DEFAULT_ACCOUNT_ID, DEFAULT_SUBDOMAIN

FIXTURE = Path(__file__).parent / "fixtures" / "webhook_leads_update_2025_unirock.form"
_LEAD_ID = "30052055"  # the fixture's lead (also its custom field's value)
_UPDATED_AT = "1744532876"


def fixture_body() -> bytes:
    return FIXTURE.read_bytes()


def lead_update_body(lead_id: int, updated_at: int) -> bytes:
    """The fixture's `leads[update]` body about another lead of the fake's account."""
    text = FIXTURE.read_text()
    text = text.replace(_LEAD_ID, str(lead_id)).replace(_UPDATED_AT, str(updated_at))
    text = text.replace("unirock", DEFAULT_SUBDOMAIN).replace("16700680", str(DEFAULT_ACCOUNT_ID))
    return text.encode()
