"""Carrier account credentials: encrypted at rest, never shown back.

Stored credentials are a JSON object (the karrio connection settings of the
provider, e.g. `{"client_id": …, "client_secret": …}`) encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived from
`TRACKSOP_CREDENTIALS_KEY`, or from `SECRET_KEY` when that is not set. An
account may instead name an environment variable that holds the JSON; then
nothing secret is in the database at all.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class CredentialsUnavailable(Exception):
    """The account's credentials cannot be read (say why, to staff)."""


def _fernet() -> Fernet:
    secret = str(
        getattr(settings, "TRACKSOP_CREDENTIALS_KEY", "") or settings.SECRET_KEY
    )
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"tracksop-carrier-credentials",
        info=b"fernet",
    ).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def credentials_encrypt(values: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def credentials_decrypt(token: str) -> dict[str, Any]:
    try:
        values = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnavailable(
            "The stored credentials cannot be decrypted: the encryption key "
            "(TRACKSOP_CREDENTIALS_KEY or SECRET_KEY) changed since they were "
            "saved. Enter them again."
        ) from exc
    if not isinstance(values, dict):
        raise CredentialsUnavailable("The stored credentials are not a JSON object.")
    return values


def credentials_parse(text: str) -> dict[str, Any]:
    """A JSON object of credentials typed by an administrator (ValueError with
    the reason when it is not one)."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Enter the credentials as a JSON object: {exc.msg}.") from exc
    if not isinstance(values, dict) or not values:
        raise ValueError(
            'Enter the credentials as a JSON object, e.g. {"client_id": "…"}.'
        )
    if not all(
        isinstance(k, str) and isinstance(v, (str, int, bool))
        for k, v in values.items()
    ):
        raise ValueError("Each credential is a name with a text value.")
    return values


def credentials_for(*, stored: str, env_name: str) -> dict[str, Any]:
    """The credentials an account uses: the environment variable's when it
    names one, else the stored ones."""
    if env_name:
        text = os.environ.get(env_name, "")
        if not text:
            raise CredentialsUnavailable(
                f"The environment variable {env_name} is not set on this server."
            )
        try:
            return credentials_parse(text)
        except ValueError as exc:
            raise CredentialsUnavailable(f"{env_name}: {exc}") from exc
    if not stored:
        raise CredentialsUnavailable("No credentials are entered for this account.")
    return credentials_decrypt(stored)
