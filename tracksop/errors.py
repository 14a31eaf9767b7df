"""The base of the refusals services raise, which pages and the API answer alike.

A service that refuses a move for a reason the user can act on (someone else
changed the row first, the status machine forbids it) raises a subclass of
`Refused` with a message that says what happened; the staff pages show it
above the form and answer 409 Conflict (tracksop/web.py), the API answers 409
too. Field errors stay `ValidationError` (400) and a right the user lacks
`PermissionDenied` (403).
"""

from __future__ import annotations


class Refused(Exception):
    """A change the current state forbids; the message says why (409)."""
