"""The `amosync` command: one module per command group."""
