"""The server's secret key, which signs session cookies."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

KEY_FILE = "secret_key"


def load_secret_key(configured: str, data_dir: Path) -> bytes:
    """`configured` when set; else the key in `data_dir/secret_key`, created once
    (32 random bytes, mode 0600) by whichever process gets there first, so sessions
    survive restarts. Raises OSError when the file cannot be read or made."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if key:
            return key
        raise OSError(f"{path} is empty; delete it to make a new key (this signs everyone out)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_bytes().strip()
