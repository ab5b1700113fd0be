"""The SQLite database holds the OAuth refresh token: only its owner may read it.

A new database file is created 0600 before SQLite opens it; SQLite then creates the `-wal`
and `-shm` files with the database file's own mode (os_unix.c, findCreateFileMode), so they
are private too whatever the process umask. At start-up (`check_database_file`) an existing
file, or its `-wal`/`-shm`, that others may read is tightened to 0600 with a warning when
this user owns it, and refused otherwise, unless AMOSYNC_ALLOW_SHARED_DB_FILE says the
sharing is on purpose (say, a group that runs backups).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from amosync.errors import ConfigError
from amosync.l10n.catalog import N_

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO
_COMPANIONS = ("", "-wal", "-shm", "-journal")


def create_private(path: Path) -> None:
    """Create an empty database file readable by its owner only, unless it exists. SQLite
    takes an empty file for a new database."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        return
    os.close(fd)


def check_database_file(path: Path, *, allow_shared: bool) -> None:
    """Tighten or refuse an existing database file (and companions) others may read.

    Raises ConfigError with what to run when the file belongs to someone else."""
    for name in (str(path) + suffix for suffix in _COMPANIONS):
        try:
            info = os.stat(name)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if not mode & _OTHERS or allow_shared:
            continue
        if info.st_uid != os.geteuid():
            said = N_(
                "database file {path} (mode {mode}) can be read by other users and belongs "
                "to uid {n}, not this user ({n2}); it holds the amoCRM tokens. Run `chmod 600 "
                "{file}` as its owner (or `chown` it to the user amosync runs as), or set "
                "AMOSYNC_ALLOW_SHARED_DB_FILE=1 to keep it shared on purpose"
            )
            raise ConfigError(
                said.format(path=name, mode=f"{mode:o}", n=info.st_uid, n2=os.geteuid(), file=name)
            )
        os.chmod(name, PRIVATE_MODE)
        log.warning(
            "database_file_tightened",
            extra={
                "event": "database_file_tightened",
                "path": name,
                "old_mode": f"{mode:o}",
                "new_mode": f"{PRIVATE_MODE:o}",
                "hint": "set AMOSYNC_ALLOW_SHARED_DB_FILE=1 to keep a shared database file",
            },
        )
