"""amosync's benchmark suite: `python -m bench --help` (or `scripts/bench`).

Every speed figure is reported next to a ceiling measured in the same run (a bare ASGI app
on the same machine, at the same moment), because the machines we run on are shared.
"""
