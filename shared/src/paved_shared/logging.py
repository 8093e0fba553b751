"""Structured JSON logging with trace correlation and secret redaction."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

_SECRET_RE = re.compile(
    r"(?i)(password|passwd|secret|token|authorization|api[_-]?key)(['\"]?\s*[:=]\s*['\"]?)([^\s'\",}]+)"
)
_DSN_PW_RE = re.compile(r"(postgres(?:ql)?://[^:/@\s]+:)([^@\s]+)(@)")


def redact(text: str) -> str:
    """Mask values that look like secrets (key=value pairs, DSN passwords)."""
    text = _DSN_PW_RE.sub(r"\1***\3", text)
    return _SECRET_RE.sub(r"\1\2***", text)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class _RedactingJsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route every logger to one stderr handler emitting JSON lines (or plain text)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter(service))
    formatter: logging.Formatter
    if json:
        formatter = _RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log_extra(**fields: Any) -> dict[str, Any]:
    """Extra fields for a structured log call: ``log.info("x", extra=log_extra(a=1))``."""
    return fields
