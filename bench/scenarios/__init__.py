"""One module per scenario; each has `run(ctx) -> dict` that prints its table."""
