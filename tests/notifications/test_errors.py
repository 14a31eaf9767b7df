"""Why a message failed, in words customer service can act on."""

from __future__ import annotations

import pytest

from notifications.errors import failure_in_words

MISSING = "The email address does not exist: check it for typos with the customer."

CASES = [
    # What the outbox records (notifications.gateways, notifications.sms) → words.
    ("Mail server answered 550: b'5.1.1 Mailbox unavailable'", MISSING),
    (
        "The mail server refused the address: {'ann@example.com': (550, "
        "b'5.1.1 <ann@example.com>: Recipient address rejected: User unknown')}",
        MISSING,
    ),
    ("The mail server refused the address: 550 No such user here", MISSING),
    (
        "The mail server refused the address: {'a@nowhere.example': (550, "
        "b'5.1.2 Domain not found')}",
        "The email address's domain (after the @) does not exist or takes no "
        "mail: check it with the customer.",
    ),
    (
        "Mail server answered 552: b'5.2.2 Mailbox full'",
        "The customer's mailbox is full. Try again later or use another channel.",
    ),
    (
        "Mail server answered 554: b'5.7.1 Message rejected as spam'",
        "The customer's mail server refused the message as spam or by its rules.",
    ),
    (
        "Mail server answered 550: b'Rejected'",
        "The customer's mail server refused the address.",
    ),
    (
        "Gave up after 5 attempts. The mail server deferred the address: "
        "{'b@example.com': (451, b'4.2.0 Try again later')}",
        "The customer's mail server kept asking us to try later (gave up after "
        "5 attempts).",
    ),
    (
        "Gave up after 5 attempts. ConnectionRefusedError: [Errno 111] "
        "Connection refused",
        "Our mail server could not be reached (gave up after 5 attempts).",
    ),
    (
        "Gave up after 5 attempts. SMTPServerDisconnected: Connection unexpectedly "
        "closed",
        "Our mail server could not be reached (gave up after 5 attempts).",
    ),
    (
        "Mail server answered 535: b'5.7.8 Authentication credentials invalid'",
        "Our mail server refused our login: the email settings need fixing "
        "(EMAIL_URL).",
    ),
    (
        "The message could not be built: Invalid address; only ann@x could be "
        "parsed from 'ann@x, bob'",
        "The address is not a single valid email address: correct it on the shipment.",
    ),
    (
        "The email provider refused the address: ann@example.com bounced",
        "The email provider refused the address: check it with the customer.",
    ),
    (
        "Twilio 400 error 21211: Invalid 'To' Phone Number: +1202555",
        "The phone number is not valid: check it with the customer.",
    ),
    (
        "Twilio 400 error 21614: 'To' number is not a valid mobile number",
        "The phone number cannot receive texts (a landline?): ask for a mobile "
        "number or use email.",
    ),
    (
        "Twilio 400 error 21610: Attempt to send to unsubscribed recipient",
        "The customer replied STOP to our texts; only they can turn texts back "
        "on (by replying START).",
    ),
    (
        "Twilio 400 error 30003: Unreachable destination handset",
        "The phone was switched off or out of reach.",
    ),
    (
        "Twilio 400 error 30005: Unknown destination handset",
        "The phone number is not in service: check it with the customer.",
    ),
    (
        "Twilio 400 error 21408: Permission to send an SMS has not been enabled "
        "for the region",
        "Our SMS account may not send texts to that country.",
    ),
    (
        "Twilio 401 error 20003: Authenticate",
        "The SMS provider refused our login: the SMS settings need fixing (TWILIO_*).",
    ),
    (
        "Gave up after 5 attempts. Twilio unreachable: HTTPSConnectionPool "
        "Read timed out",
        "The SMS provider could not be reached (gave up after 5 attempts).",
    ),
    (
        "The worker stopped while sending, too many times.",
        "Sending was cut off too many times (the worker stopped mid-send).",
    ),
    # Anything not recognised is shown as it was recorded.
    ("Something nobody foresaw", "Something nobody foresaw"),
    ("", ""),
]


@pytest.mark.parametrize(("raw", "words"), CASES, ids=[c[0][:40] for c in CASES])
def test_a_failure_is_said_in_plain_words(raw: str, words: str) -> None:
    assert failure_in_words(raw) == words
