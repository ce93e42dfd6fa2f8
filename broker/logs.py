"""Logging: plain text for a terminal, one JSON object per line for production.

Log records never carry a customer's personal data: events name ids, counts and
rules, never names, emails or addresses. Nor do they carry a capability token:
every handler `configure` installs passes records through `RedactCapabilities`,
so a path in a request log, an error's message or a traceback is written with
its token replaced (broker/redact.py).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from broker.redact import redact_text

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info or record.exc_text:
            # exc_text when a filter has already written (and redacted) the traceback.
            out["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class RedactCapabilities(logging.Filter):
    """Capability tokens out of a record before any handler formats it: the
    message (werkzeug's request line, Flask's "Exception on <path>", gunicorn's
    error lines), the traceback and any extra string field."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _PLAIN.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, redact_text(value))
        return True


_PLAIN = logging.Formatter()
REDACT = RedactCapabilities()


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # On the handler, not a logger: records that propagate up from any logger
    # (werkzeug's, Flask's, ours) pass a handler's filters, not the root logger's.
    handler.addFilter(REDACT)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every job start at INFO; ours say what the job did.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
