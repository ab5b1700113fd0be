"""Test doubles shipped with amosync: a fake amoCRM API v4 that behaves like the real one."""

from amosync.testing.fake_amocrm import create_fake_amocrm
from amosync.testing.fake_fields import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_PIPELINE_ID,
    DEFAULT_STATUS_ID,
    DEFAULT_SUBDOMAIN,
    DEFAULT_TOKEN,
    DEFAULT_USER_ID,
    EMAIL_FIELD_ID,
    PHONE_FIELD_ID,
    RENTPROG_FIELD_ID,
    STATUS_LOST,
    STATUS_WON,
    rentprog_field,
)
from amosync.testing.fake_render import StoredEntity
from amosync.testing.fake_server import run_fake_in_thread, seed_demo_account, serve_fake
from amosync.testing.fake_state import FakeAmoState, Fault, LoggedRequest

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_PIPELINE_ID",
    "DEFAULT_STATUS_ID",
    "DEFAULT_SUBDOMAIN",
    "DEFAULT_TOKEN",
    "DEFAULT_USER_ID",
    "EMAIL_FIELD_ID",
    "PHONE_FIELD_ID",
    "RENTPROG_FIELD_ID",
    "STATUS_LOST",
    "STATUS_WON",
    "FakeAmoState",
    "Fault",
    "LoggedRequest",
    "StoredEntity",
    "create_fake_amocrm",
    "rentprog_field",
    "run_fake_in_thread",
    "seed_demo_account",
    "serve_fake",
]
