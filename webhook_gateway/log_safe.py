"""Client text made safe for one log line: escaped, never a line break, cut to a length.

Everything a client sends (paths, methods, header values, webhook ids) goes through `escape` before
it reaches a log line, so no request can start a forged line or bury the real one.
"""

from __future__ import annotations

import re

# printable ASCII except the backslash stays; everything else becomes \n, \r, \t or \xNN / \uNNNN
_UNSAFE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii") if match.group() != "\\" else "\\\\"


def escape(text: str | bytes, limit: int = 200) -> str:
    """`text` with every non-printable or non-ASCII character escaped, cut to `limit` characters."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    cut = len(text) > limit
    safe = _UNSAFE.sub(_escaped, text[:limit])
    return safe + f"...(+{len(text) - limit})" if cut else safe
