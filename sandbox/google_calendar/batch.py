"""multipart/mixed batch bodies: split the parts of a request, assemble the parts of the answer.

Request parts are `application/http` with a path-only request line (what googleapiclient's
BatchHttpRequest sends); answer parts carry `Content-ID: <response-{id}>` so the client's
`_header_to_id` maps them back to its callbacks.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus


@dataclass
class BatchPart:
    content_id: str | None  # inside the angle brackets
    method: str
    target: str  # path and query, e.g. /calendar/v3/calendars/primary/events?alt=json
    headers: dict[str, str]  # lower-case names
    body: bytes


def boundary_of(content_type: str) -> str | None:
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/mixed":
        return None
    boundary = msg.get_param("boundary")
    return str(boundary) if boundary else None


def _split_head(blob: bytes) -> tuple[list[str], bytes]:
    """Header lines and the rest, at the first empty line (CRLF or LF)."""
    positions = [(i, n) for sep, n in ((b"\r\n\r\n", 4), (b"\n\n", 2)) if (i := blob.find(sep)) >= 0]
    if not positions:
        return blob.decode("utf-8", "replace").splitlines(), b""
    index, size = min(positions)
    return blob[:index].decode("utf-8", "replace").splitlines(), blob[index + size :]


def _headers(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def parse_batch(body: bytes, boundary: str) -> list[BatchPart]:
    delimiter = b"--" + boundary.encode()
    parts: list[BatchPart] = []
    for piece in body.split(delimiter)[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece.removeprefix(b"\r\n") if piece.startswith(b"\r\n") else piece.removeprefix(b"\n")
        piece = piece.removesuffix(b"\r\n") if piece.endswith(b"\r\n") else piece.removesuffix(b"\n")
        mime_lines, http_blob = _split_head(piece)
        mime = _headers(mime_lines)
        request_lines, inner_body = _split_head(http_blob.lstrip(b"\r\n"))
        if not request_lines:
            raise ValueError("empty batch part")
        method, target, *_ = request_lines[0].split(" ")
        content_id = mime.get("content-id")
        if content_id and content_id.startswith("<") and content_id.endswith(">"):
            content_id = content_id[1:-1]
        parts.append(BatchPart(content_id, method.upper(), target, _headers(request_lines[1:]), inner_body))
    return parts


def render_batch(answers: list[tuple[str | None, int, dict[str, str], bytes]]) -> tuple[bytes, str]:
    """(content_id, status, headers, body) per part -> (body, content type) of the batch answer."""
    boundary = "batch_" + secrets.token_hex(12)
    out: list[bytes] = []
    for index, (content_id, status, headers, body) in enumerate(answers, start=1):
        cid = f"<response-{content_id}>" if content_id else f"<response-item{index}>"
        out.append(f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {cid}\r\n\r\n".encode())
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
        head = [f"HTTP/1.1 {status} {reason}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        # The CRLF after the body belongs to the next delimiter, so an empty body still ends
        # with CRLF CRLF, which the client's parser needs.
        out.append("\r\n".join(head).encode() + b"\r\n\r\n" + body + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/mixed; boundary={boundary}"
