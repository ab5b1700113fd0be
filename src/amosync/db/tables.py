"""Every table amosync owns, as SQLAlchemy Core. Migrations must match this file (tested)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

from amosync.db.types import BigIntId, Json, UTCDateTime, outside_text

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# The inbox: one row per entity item of every webhook body (and per n8n push).
# A row is claimable when status = 'pending' and available_at <= now; claiming moves
# available_at to the lease end, so a crashed worker's rows come back by themselves.
webhook_events = Table(
    "amocrm_webhook_events",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", String(16), nullable=False),  # webhook | n8n | worker
    Column("request_id", outside_text(64)),  # X-amoCRM-RequestId, when sent
    # Names as the body gives them: any length (unknown kinds are stored as ignored).
    Column("entity", outside_text(32), nullable=False),
    Column("action", outside_text(32), nullable=False),
    Column("entity_id", BigInteger),
    Column("account_id", BigInteger),
    Column("entity_updated_at", BigInteger),  # unix seconds claimed by the payload
    Column("payload", Json, nullable=False),
    Column("status", String(16), nullable=False),  # pending | done | failed | ignored
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("processed_at", UTCDateTime),
    Column("available_at", UTCDateTime, nullable=False),
    Column("locked_by", String(64)),
    Index(None, "status", "available_at", "id"),
    Index(None, "entity", "entity_id"),
    Index(None, "received_at"),
    # Finished events only (db/migrations/versions/0004_processed_at_index.py): the chart.
    Index(
        None,
        "processed_at",
        "status",
        sqlite_where=text("processed_at IS NOT NULL"),
        postgresql_where=text("processed_at IS NOT NULL"),
    ),
)

deals = Table(
    "amocrm_deals",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("price", BigInteger),
    Column("status_id", BigInteger),
    Column("pipeline_id", BigInteger),
    Column("responsible_user_id", BigInteger),
    Column("created_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    Column("rentprog_id", Text),  # amoCRM users type it: no length limit (0004)
    # Ids the reference tables below name (0008); 0 in created_by/updated_by is "the system".
    Column("loss_reason_id", BigInteger),
    Column("created_by", BigInteger),
    Column("updated_by", BigInteger),
    Column("custom_fields", Json, nullable=False),
    Column("raw", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
    Index(None, "rentprog_id"),
    Index(None, "updated_at"),
    Index(None, "synced_at"),  # the read API's change feed pages by it
)


def _person_table(name: str) -> Table:
    """Contacts and companies share a shape; amoCRM keeps them apart, so do we."""
    return Table(
        name,
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=False),
        Column("name", Text),
        Column("first_name", Text),
        Column("last_name", Text),
        Column("responsible_user_id", BigInteger),
        Column("created_at", UTCDateTime),
        Column("updated_at", UTCDateTime),
        Column("is_deleted", Boolean, nullable=False, server_default=false()),
        Column("phones", Json, nullable=False),
        # The first of `phones` as plain text (0008), so the named view reads it with one
        # SQL on both databases (JSON functions differ between SQLite and PostgreSQL).
        Column("phone", Text),
        Column("emails", Json, nullable=False),
        Column("custom_fields", Json, nullable=False),
        Column("raw", Json, nullable=False),
        Column("synced_at", UTCDateTime, nullable=False),
        Index(None, "updated_at"),
    )


contacts = _person_table("amocrm_contacts")
companies = _person_table("amocrm_companies")

# No foreign keys: a link may name a contact we have not fetched yet.
deal_contacts = Table(
    "amocrm_deal_contacts",
    metadata,
    Column("deal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("contact_id", BigInteger, primary_key=True, autoincrement=False),
    Column("is_main", Boolean, nullable=False, server_default=false()),
    Index(None, "contact_id"),
)

# One row per running worker: its heartbeat and what it is doing, read by /health and status.
workers = Table(
    "amosync_workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("state", String(32), nullable=False),  # running | reauth_required | ip_blocked | stopped
    Column("state_detail", Text),
    Column("processed", BigInteger, nullable=False, default=0),
    Column("failed", BigInteger, nullable=False, default=0),
)

# Every call made to amoCRM, so `status` can show the hourly spend from any process.
api_requests = Table(
    "amocrm_api_requests",
    metadata,
    Column("id", BigIntId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(255), nullable=False),
    Column("status", Integer, nullable=False),  # 0 when no response arrived
    Column("duration_ms", Integer, nullable=False),
    Column("purpose", String(16), nullable=False),  # webhook | catchup | backfill | check
    Index(None, "at"),
)

# OAuth tokens live in the database, not in files or env vars: every process sees the same
# pair, and a refresh is serialised by a lease row in `amosync_state` (see amocrm/token_store.py).
oauth_tokens = Table(
    "amocrm_oauth_tokens",
    metadata,
    Column("account", String(255), primary_key=True),  # the API base URL the tokens are for
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("refresh_expires_at", UTCDateTime),  # amoCRM: 3 months after the last refresh
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, default=1),  # bumped on every rotation
)

# Small named pieces of state shared by all processes: catch-up watermarks, backfill
# progress, the shared rate-limit window, the last webhook-subscription check.
sync_state = Table(
    "amosync_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Json, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# When each stored entity was last compared with amoCRM (`amosync verify` and the worker's
# background verification), so the background job checks the oldest-verified rows first.
# A table of its own rather than a column on the entity tables: every upsert writes all of
# an entity row's columns, and verification must not be reset (or race) with them.
verified = Table(
    "amosync_verified",
    metadata,
    Column("entity", String(16), primary_key=True),  # leads | contacts
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("verified_at", UTCDateTime, nullable=False),
    Index(None, "entity", "verified_at"),
)


# Reference data (0008): what the ids on deals and contacts name. amoCRM never announces a
# change to them by webhook, so the worker polls (reference/job.py). Rows amoCRM stops
# listing stay, flagged `is_deleted`, so old deals keep their stage and user names.
pipelines = Table(
    "amocrm_pipelines",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("sort", BigInteger),
    Column("is_main", Boolean, nullable=False, server_default=false()),
    Column("is_archive", Boolean, nullable=False, server_default=false()),
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    Column("raw", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)

# Keyed by (pipeline_id, id): the system stages 142 (won) and 143 (lost) are in every pipeline.
statuses = Table(
    "amocrm_statuses",
    metadata,
    Column("pipeline_id", BigInteger, primary_key=True, autoincrement=False),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("sort", BigInteger),
    Column("color", Text),
    Column("type", BigInteger),  # 1 = incoming ("unsorted"), 0 = regular
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    Column("raw", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)

users = Table(
    "amocrm_users",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("email", Text),
    Column("is_active", Boolean),
    Column("is_admin", Boolean),
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    Column("raw", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)

custom_fields = Table(
    "amocrm_custom_fields",
    metadata,
    Column("entity_type", String(16), primary_key=True),  # leads | contacts | companies
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("code", Text),
    Column("type", Text),
    Column("sort", BigInteger),
    Column("enums", Json),  # [{id, value, sort}] for lists, else null
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    Column("raw", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)

loss_reasons = Table(
    "amocrm_loss_reasons",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Column("sort", BigInteger),
    Column("is_deleted", Boolean, nullable=False, server_default=false()),
    Column("raw", Json, nullable=False),
    Column("synced_at", UTCDateTime, nullable=False),
)


# Custom-field values as rows (0010), so readers query fields with plain SQL instead of the
# `custom_fields` JSON, whose functions differ between SQLite and PostgreSQL. One row per
# value (a multiselect gives several, numbered by `position`); the upsert replaces an
# entity's rows in the transaction that stores the entity (upsert/field_values.py). Every
# value keeps `value_text`, so a text search finds numbers, dates and enum labels alike;
# `value_text` is bounded (upsert/field_values.py) because it is indexed, and a PostgreSQL
# btree entry must stay under ~2.7 kB: the whole value stays in the entity's `custom_fields`.
field_values = Table(
    "amocrm_field_values",
    metadata,
    Column("entity_type", String(16), primary_key=True),  # leads | contacts
    Column("entity_id", BigInteger, primary_key=True, autoincrement=False),
    Column("field_id", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("field_code", Text),
    Column("value_text", Text),
    Column("value_number", Float),
    Column("value_datetime", UTCDateTime),
    Column("enum_id", BigInteger),
    Column("enum_code", Text),
    # Search by a field's value: "the deal whose field 123456 is X". Partial indexes for the
    # typed columns, since most values are text and an index of NULLs costs every write.
    Index(None, "field_id", "value_text"),
    Index(
        None,
        "field_id",
        "value_number",
        sqlite_where=text("value_number IS NOT NULL"),
        postgresql_where=text("value_number IS NOT NULL"),
    ),
    Index(
        None,
        "field_id",
        "value_datetime",
        sqlite_where=text("value_datetime IS NOT NULL"),
        postgresql_where=text("value_datetime IS NOT NULL"),
    ),
    Index(
        None,
        "field_id",
        "enum_id",
        sqlite_where=text("enum_id IS NOT NULL"),
        postgresql_where=text("enum_id IS NOT NULL"),
    ),
)

# A lead's tags from its `_embedded.tags` (0010), replaced with the deal like field values.
deal_tags = Table(
    "amocrm_deal_tags",
    metadata,
    Column("deal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tag_id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", Text),
    Index(None, "name"),  # "deals tagged X": readers know tags by name (bounded like values)
)

# A lead's companies from its `_embedded.companies` (0010). No foreign key, as for contacts:
# a link may name a company the worker has queued but not fetched yet.
deal_companies = Table(
    "amocrm_deal_companies",
    metadata,
    Column("deal_id", BigInteger, primary_key=True, autoincrement=False),
    Column("company_id", BigInteger, primary_key=True, autoincrement=False),
    Index(None, "company_id"),
)
