"""`GET /api/v4/account` of the fake, shaped like tests/data/api_account_docs_example.json."""

from __future__ import annotations

from typing import Any

from amosync.testing.fake_fields import DEFAULT_USER_ID

# Top-level extras and `_embedded` parts the real endpoint adds only when named in `with=`.
_WITH_FIELDS: dict[str, Any] = {
    "amojo_id": "f3c6340d-410e-4ad1-9f7e-c5e663599909",
    "uuid": "824f3a59-6154-4edf-ba90-0b5593715d07",
    "version": 16,
    "drive_url": "https://drive-b.amocrm.ru",
    "is_api_filter_enabled": True,
}
_WITH_EMBEDDED: dict[str, Any] = {
    "amojo_rights": {"can_direct": True, "can_create_groups": True},
    "users_groups": [{"id": 0, "name": "Отдел продаж", "uuid": None}],
    "task_types": [
        {"id": 1, "name": "Связаться", "color": None, "icon_id": None, "code": "FOLLOW_UP"},
        {"id": 2, "name": "Встреча", "color": None, "icon_id": None, "code": "MEETING"},
    ],
    "datetime_settings": {
        "date_pattern": "d.m.Y H:i",
        "short_date_pattern": "d.m.Y",
        "short_time_pattern": "H:i",
        "date_formant": "d.m.Y",
        "time_format": "H:i:s",
        "timezone": "Europe/Moscow",
        "timezone_offset": "+03:00",
    },
}


def account_body(
    account_id: int, name: str, subdomain: str, base_url: str, with_: frozenset[str]
) -> dict[str, Any]:
    """The account object; `with_` adds the optional parts a real account would add."""
    body: dict[str, Any] = {
        "id": account_id,
        "name": name,
        "subdomain": subdomain,
        "current_user_id": DEFAULT_USER_ID,
        "country": "RU",
        "customers_mode": "segments",
        "is_unsorted_on": True,
        "is_loss_reason_enabled": True,
        "is_helpbot_enabled": False,
        "is_technical_account": False,
        "contact_name_display_order": 1,
    }
    body.update({key: value for key, value in _WITH_FIELDS.items() if key in with_})
    body["_links"] = {"self": {"href": f"{base_url}/api/v4/account"}}
    embedded = {key: value for key, value in _WITH_EMBEDDED.items() if key in with_}
    if embedded:
        body["_embedded"] = embedded
    return body
