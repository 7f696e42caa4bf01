"""Error bodies for unauthenticated clients: short, and free of file-system paths.

Library messages name files by their absolute path so an operator can fix them from the
server log; the HTTP answer keeps only the file's name, and echoes at most a short prefix
of what the client sent (a 100 kB symbol must not come back as a 100 kB answer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_MESSAGE = 300
MAX_ECHO = 32
# an absolute path not inside a URL (no word char, '.', ':' or '/' just before it)
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[^\s/:'\"(),;]+)+/?")


def roots_of(service: Any) -> tuple[str, ...]:
    """The server's state folders (data, registry, reports), longest first: replaced by
    their own names, they leave paths readable and free of the machine's layout, spaces
    and colons in the folder names included."""
    paths = getattr(service, "paths", None)
    if paths is None:
        return ()
    folders = (paths.data_dir, paths.registry_dir, paths.reports_dir)
    return tuple(sorted({str(Path(f).resolve()) for f in folders} | {str(f) for f in folders},
                        key=len, reverse=True))  # fmt: skip


def redact_paths(text: str, roots: Sequence[str] = ()) -> str:
    """Known state folders replaced by their names ('/srv/x/registry/a.json' ->
    'registry/a.json'), any other absolute path by its last component, then cut to
    MAX_MESSAGE characters."""
    for root in roots:
        if root and root != "/":
            text = text.replace(root, Path(root).name)

    def name(match: re.Match[str]) -> str:
        parts = [p for p in match.group(0).split("/") if p]
        return parts[-1] if parts else "/"

    return clip(_ABSOLUTE_PATH.sub(name, text), MAX_MESSAGE)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(errors: Sequence[dict[str, Any]]) -> str:
    """FastAPI's validation errors as one line: where, what, and a short prefix of the input."""
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "header"))
        text = f"{where or 'request'}: {error.get('msg', 'invalid')}"
        if "input" in error and error["input"] is not None and where:
            text += f" (got {clip(repr(error['input']), MAX_ECHO)})"
        parts.append(text)
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more")
    return redact_paths("; ".join(parts))
