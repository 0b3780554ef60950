"""A local SMTP server (aiosmtpd) that keeps every message it receives: the alerts' mailbox in tests."""

from __future__ import annotations

import email
import json
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from sandbox.runner import free_port


class _Keep:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _Keep()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    @property
    def messages(self) -> list[Message]:
        return list(self._handler.messages)

    def bodies(self) -> list[str]:
        out = []
        for m in self.messages:
            parts = [p for p in m.walk() if p.get_content_maintype() == "text"]
            out.append("\n".join(str(p.get_payload(decode=True).decode()) for p in parts))
        return out

    def connection(self) -> str:
        """AIRFLOW_CONN_SMTP_DEFAULT for this sink (no TLS: it is a local test server)."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "extra": {
                    "from_email": "alerts@kanzlei.example",
                    "disable_tls": True,
                    "disable_ssl": True,
                    "timeout": 10,
                    "retry_limit": 0,
                },
            }
        )
