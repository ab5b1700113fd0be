"""Pure logic: parsing, mapping, merging. No I/O imports (no sqlalchemy, httpx, starlette)."""
