"""``X-Alignbot-Signature``: HMAC-SHA256 over ``"<t>.<raw body>"`` (PRODUCT.md section 4).

``t=<unix seconds>,v1=<hex>[,v1=<hex>…]``: several ``v1`` let a CRM sign with the old and the
new secret while they are rotated; alignbot accepts any secret of ``ALIGNBOT_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

HEADER = "X-Alignbot-Signature"
TOLERANCE = 300  # seconds either side of now


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body`` signed with ``secret`` at ``timestamp`` (now by default)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secrets: Iterable[str], header: str | None, body: bytes, *, now: float | None = None) -> str | None:
    """None when the signature is good; else why not (missing, malformed, stale, or wrong)."""
    if not header:
        return f"missing {HEADER} header"
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():  # "²".isdigit() is True; int("²") raises
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value.strip().lower())
    if timestamp is None or not signatures:
        return f"malformed {HEADER} header: expected t=<unix seconds>,v1=<hex HMAC-SHA256>"
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE:
        return f"stale signature: t is {int(current - timestamp)} s from now (at most {TOLERANCE} s either way)"
    signed = f"{timestamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, given) for given in signatures):
            return None
    return "signature does not match: sign t.<raw body> with HMAC-SHA256 and one of the configured secrets"
