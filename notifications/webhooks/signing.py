"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

`webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>` of
`<webhook-id>.<webhook-timestamp>.<body>`, keyed with the bytes the secret's
base64 stands for (`whsec_<base64>`). Two during a rotation: the receiver
accepts the message if any one verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


def secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(
    *, secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> str:
    return " ".join(
        signature(secret=s, msg_id=msg_id, timestamp=timestamp, body=body)
        for s in secrets
    )
