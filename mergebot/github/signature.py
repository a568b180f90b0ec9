"""GitHub webhook signatures: `X-Hub-Signature-256: sha256=<HMAC-SHA256 hex of the raw body>`.

The body is authenticated before anything reads it as JSON, and the comparison is constant-time
so a forger learns nothing from how long a wrong guess took.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(secret: bytes, body: bytes) -> str:
    """The header value GitHub would send for `body` (used by tests and by local tooling)."""
    return _PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str | None) -> bool:
    """True only when `header` is the exact signature of `body` under `secret`."""
    if not secret or not header:
        return False
    expected = sign(secret, body)
    # compare_digest on bytes: a non-ASCII header must fail cleanly, not raise.
    return hmac.compare_digest(expected.encode(), header.strip().encode("utf-8", "replace"))
