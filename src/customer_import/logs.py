"""Logging set-up for the command line: text or JSON lines, emails and phones masked.

The API key never reaches a log: it is only ever in the HTTP client's default headers,
which nothing logs. Masking is defence in depth for customer data in messages.

A JSON line is ``time``, ``level``, ``logger``, ``message``; a line a collector may key on
carries an ``event`` name and its fields too (``extra=event("run_finished", rows=5)``):
text lines show only the message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Final

_EMAIL: Final = re.compile(r"([A-Za-z0-9])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
_PHONE: Final = re.compile(r"(?<![\w.])(\+?\d)[\d\s().-]{5,}?(\d{4})(?![\w])")


def mask(text: str) -> str:
    """'john@example.com' -> 'j***@example.com'; '+1 212 555 4567' -> '+1******4567'."""
    text = _EMAIL.sub(r"\1***@\2", text)
    return _PHONE.sub(lambda m: f"{m.group(1)}******{m.group(2)}", text)


def mask_value(target: str, value: str) -> str:
    """A field's value for display: emails and phones never whole."""
    if target == "email":
        local, at, domain = value.partition("@")
        return f"{local[:1]}***{at}{domain}" if at else f"{value[:1]}***"
    if target == "phoneNumber":
        return f"{value[:2]}******{value[-4:]}" if len(value) > 6 else "*" * len(value)
    return value


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def event(name: str, **fields: object) -> dict[str, object]:
    """``extra`` for a log call whose JSON line a collector keys on: ``"event": name`` and
    ``fields`` (JSON values) beside the message."""
    return {"event": name, "event_fields": fields}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        name = getattr(record, "event", None)
        if name is not None:
            entry["event"] = name
            fields: dict[str, object] = getattr(record, "event_fields", {})
            entry.update((k, v) for k, v in fields.items() if k not in entry)
        if record.exc_info:
            entry["error"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Log lines to stderr. JSON: Python's warnings become JSON lines too, so that every line
    the command writes is one JSON object."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(message)s"))
    loggers = ["customer_import"]
    if log_format == "json":
        logging.captureWarnings(True)
        loggers.append("py.warnings")
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
