"""Structured JSON logs that carry the request id and never carry a PAN, CIN, phone or RIB.

Masking runs on the final text of every record (message, arguments and extra fields), so a
careless ``log.info("paid with %s", card_number)`` is still safe.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from typing import Any

from shared import tracing
from shared.cards import luhn_valid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_PAN = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_RIB = re.compile(r"(?<![0-9A-Za-z])(?:MA\d{2} ?)?(?:\d[ ]?){23}\d(?!\d)")
_PHONE = re.compile(
    r"(?<!\d)(?:\+|00)?212[ .-]?\(?0?\)?[5-7](?:[ .-]?\d){8}(?!\d)|(?<!\d)0[5-7](?:[ .-]?\d){8}(?!\d)"
)
_CIN = re.compile(r"\b[A-Z]{1,2}\d{4,8}\b")
# What every pattern above needs somewhere: four digits, each pair at most one separator apart.
# Text without it (most log lines) is returned as it is, after this one pass instead of four.
_MAYBE_SENSITIVE = re.compile(r"\d[ .-]?\d[ .-]?\d[ .-]?\d")


def _mask_keep_last(text: str, keep: int) -> str:
    digits = re.sub(r"\D", "", text)
    return "*" * max(len(digits) - keep, 0) + digits[-keep:]


def _mask_long_number(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 24 or raw.upper().startswith("MA"):
        return "[RIB " + _mask_keep_last(digits, 4) + "]"
    if 13 <= len(digits) <= 19 and luhn_valid(digits):
        return "[PAN]"  # not even the last four: a PAN never appears, whole or in part
    return raw


def mask_sensitive(text: str) -> str:
    """Mask RIBs/IBANs, card numbers, Moroccan phone numbers and CINs in free text."""
    if not _MAYBE_SENSITIVE.search(text):
        return text
    text = _RIB.sub(_mask_long_number, text)
    text = _PAN.sub(_mask_long_number, text)
    text = _PHONE.sub(lambda m: "[phone " + _mask_keep_last(m.group(0), 2) + "]", text)
    text = _CIN.sub(lambda m: m.group(0)[:1] + "*" * (len(m.group(0)) - 1), text)
    return text


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        # What this formatter writes itself (the time, the level, names) holds nothing to mask, and
        # its digits would send every line through the masking patterns: only the rest is masked.
        head = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
        }
        entry: dict[str, Any] = {"message": record.getMessage()}
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if tracing.tracer() is not None:
            trace_id = tracing.current_trace_id()
            if trace_id is not None:
                entry["trace_id"] = trace_id  # the line's trace, to find it in the collector
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        rest = mask_sensitive(json.dumps(entry, default=str, ensure_ascii=False))
        return json.dumps(head, ensure_ascii=False)[:-1] + ", " + rest[1:]


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal; masked the same way."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = request_id_var.get()
        return mask_sensitive(f"{line} [{request_id}]" if request_id else line)


def configure_logging(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json_logs else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # kafka-python is chatty at INFO about every reconnect.
    logging.getLogger("kafka").setLevel(logging.WARNING)
