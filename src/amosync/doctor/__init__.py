"""`amosync doctor`: the setup checklist as checks (pure) over gathered facts (I/O)."""
