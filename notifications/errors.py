"""Why a message failed, in words: the outbox records what the mail server or
SMS provider answered (`b'5.1.1 Mailbox unavailable'`, `Twilio 400 error
21211`); customer service needs to know what to do about it. Pure: the raw
text stays on the row, and the pages show it beside these words."""

from __future__ import annotations

import re

MISSING = "The email address does not exist: check it for typos with the customer."
NO_DOMAIN = (
    "The email address's domain (after the @) does not exist or takes no mail: "
    "check it with the customer."
)
FULL = "The customer's mailbox is full. Try again later or use another channel."
SPAM = "The customer's mail server refused the message as spam or by its rules."
LATER = "The customer's mail server kept asking us to try later."
REFUSED = "The customer's mail server refused the address."
MAIL_LOGIN = (
    "Our mail server refused our login: the email settings need fixing (EMAIL_URL)."
)
MAIL_DOWN = "Our mail server could not be reached."
SMS_DOWN = "The SMS provider could not be reached."

# Twilio's error codes (twilio.com/docs/api/errors) that staff can act on.
TWILIO: dict[int, str] = {
    20003: "The SMS provider refused our login: the SMS settings need fixing "
    "(TWILIO_*).",
    21211: "The phone number is not valid: check it with the customer.",
    21408: "Our SMS account may not send texts to that country.",
    21610: "The customer replied STOP to our texts; only they can turn texts "
    "back on (by replying START).",
    21612: "The SMS provider cannot send to this number: use email.",
    21614: "The phone number cannot receive texts (a landline?): ask for a "
    "mobile number or use email.",
    30003: "The phone was switched off or out of reach.",
    30005: "The phone number is not in service: check it with the customer.",
    30006: "The phone number cannot receive texts (a landline?): ask for a "
    "mobile number or use email.",
    30007: "The mobile network blocked the text as spam.",
}

_GAVE_UP = re.compile(r"^Gave up after (\d+) attempts\. (.*)$", re.DOTALL)
_TWILIO = re.compile(r"\bTwilio (\d{3}) error (\d+)")
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_REPLY = re.compile(r"(?:answered |\(|: )([245]\d\d)\b")
_MISSING_WORDS = ("no such user", "user unknown", "mailbox unavailable", "not exist")
_UNREACHABLE = (
    "ConnectionRefusedError",
    "ConnectionResetError",
    "SMTPServerDisconnected",
    "SMTPConnectError",
    "TimeoutError",
    "gaierror",
)


def failure_in_words(raw: str) -> str:
    """A sentence for a failed message's `last_error`; the raw text itself
    when it is not one we know."""
    gave_up = _GAVE_UP.match(raw)
    if gave_up:
        words = _words(gave_up.group(2))
        if words is None:
            return raw
        return f"{words.removesuffix('.')} (gave up after {gave_up.group(1)} attempts)."
    return _words(raw) or raw


def _words(raw: str) -> str | None:
    twilio = _TWILIO.search(raw)
    if twilio:
        status, code = int(twilio.group(1)), int(twilio.group(2))
        if code in TWILIO:
            return TWILIO[code]
        if 400 <= status < 500:
            return "The SMS provider refused the text."
        return "The SMS provider had a problem sending the text."
    if raw.startswith("Twilio unreachable"):
        return SMS_DOWN
    if raw.startswith("The message could not be built"):
        return (
            "The address is not a single valid email address: correct it on the "
            "shipment."
        )
    if raw.startswith("The email provider refused the address"):
        return "The email provider refused the address: check it with the customer."
    if raw.startswith("The worker stopped while sending, too many"):
        return "Sending was cut off too many times (the worker stopped mid-send)."
    if "mail server" in raw.lower():
        return _smtp(raw)
    if any(name in raw for name in _UNREACHABLE):
        return MAIL_DOWN
    return None


def _smtp(raw: str) -> str | None:
    """From the SMTP reply code (550) and enhanced status code (5.1.1)."""
    text = raw.lower()
    enhanced = _ENHANCED.search(raw)
    detail = enhanced.group(0) if enhanced else ""
    reply = _REPLY.search(raw)
    code = int(reply.group(1)) if reply else 0
    if detail == "5.1.1" or any(w in text for w in _MISSING_WORDS):
        return MISSING
    if detail in ("5.1.2", "5.1.10") or "domain not found" in text:
        return NO_DOMAIN
    if detail == "5.2.2" or code == 552 or "mailbox full" in text or "quota" in text:
        return FULL
    if code in (530, 535) or detail in ("5.7.0", "5.7.8"):
        return MAIL_LOGIN
    if detail.startswith("5.7.") or code == 554 or "spam" in text:
        return SPAM
    if 400 <= code < 500 or "deferred" in text:
        return LATER
    if code >= 500:
        return REFUSED
    return None
