"""What a webhook secret or admin token must look like before amosync starts with it.

Both are the only thing between the internet and the data: the webhook secret is a path
segment anyone reaching the proxy can try, the admin token opens every deal. A short value
or one copied from an example file is refused, naming the variable and how to make one.
"""

from __future__ import annotations

MIN_SECRET_LENGTH = 16
GENERATE_HINT = (
    "generate one with `openssl rand -hex 16` or "
    "`python -c 'import secrets; print(secrets.token_hex(16))'`"
)
# Values shown in our examples and docs (compared case-insensitively): someone who copies
# an example file unchanged must not end up with a known secret.
PLACEHOLDERS = frozenset(
    {
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "password",
        "token",
        "…",
        "...",
        "xxx",
        "<secret>",
        "<token>",
        "your-secret",
        "your-token",
    }
)


def secret_problem(value: str) -> str | None:
    """Why `value` may not be used as a secret, or None when it may."""
    if value.strip().lower() in PLACEHOLDERS or "change-me" in value.lower():
        return f"is a documented placeholder, not a secret; {GENERATE_HINT}"
    if len(value) < MIN_SECRET_LENGTH:
        return (
            f"is {len(value)} characters long; use at least {MIN_SECRET_LENGTH} random "
            f"characters: {GENERATE_HINT}"
        )
    return None
