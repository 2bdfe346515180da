"""Who an HTTP request comes from, for per-caller limits."""

from __future__ import annotations

from flask import request


def client_address(trust_forwarded_for: bool) -> str:
    """The client's address: the last hop of X-Forwarded-For behind a proxy we trust to set it
    (the ingress appends the address it saw; what a client writes before it does not count),
    else the address of the connection."""
    if trust_forwarded_for:
        forwarded = [
            hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()
        ]
        if forwarded:
            return forwarded[-1]
    return request.remote_addr or "unknown"
