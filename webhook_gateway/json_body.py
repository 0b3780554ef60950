"""JSON request bodies with a nesting limit: a hostile body is a 400, never a RecursionError (500).

msgspec (and the json module) raise RecursionError for about 1,000 nested arrays; a body of
100,000 `[` fits in any size limit. `decode` turns both that and any nesting deeper than
`MAX_DEPTH` into `BadJson` with a precise reason. No Advoware, EspoCRM or trigger body comes near
32 levels.
"""

from __future__ import annotations

from typing import Any

import msgspec

MAX_DEPTH = 32


class BadJson(ValueError):
    """The body is not acceptable JSON; the message says why (never quotes the body at length)."""


def decode(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    try:
        value = msgspec.json.decode(body)
    except RecursionError:
        raise BadJson(f"body is JSON nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:  # msgspec.DecodeError is a ValueError
        raise BadJson(f"body is not valid JSON: {str(exc)[:200]}") from None
    if too_deep(value, max_depth):
        raise BadJson(f"body is JSON nested deeper than {max_depth} levels")
    return value


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True when arrays/objects nest more than `max_depth` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
