"""The exception status machine: the one table of allowed moves.

Each change to an exception is an action (the ExceptionChange.Action its
history row records); `next_status` says which status the action moves the
exception to, or refuses it. Every service that changes an exception's status
asks it: working one (assign, note, reschedule), the escalation sweep,
resolving it, closing it with its shipment and voiding it with its report.
A report opens it at INITIAL.
"""

from __future__ import annotations

from exceptions_mgmt.models import ExceptionChange, ExceptionStatus
from tracksop.errors import Refused

S = ExceptionStatus
A = ExceptionChange.Action

INITIAL = S.OPEN

# Taking an exception on: the first one acknowledges it.
WORK = (A.ASSIGNED, A.NOTED, A.RESCHEDULED)
CLOSING: dict[str, str] = {
    A.RESOLVED: S.RESOLVED,
    A.CLOSED_WITH_SHIPMENT: S.RESOLVED,
    A.VOIDED: S.VOID,
}

# Per status, the status each allowed action moves it to. An action missing
# from a status's row is refused there.
TRANSITIONS: dict[str, dict[str, str]] = {
    S.OPEN: {
        **dict.fromkeys(WORK, S.IN_PROGRESS),
        A.ESCALATED: S.ESCALATED,
        **CLOSING,
    },
    S.IN_PROGRESS: {
        **dict.fromkeys(WORK, S.IN_PROGRESS),
        A.ESCALATED: S.ESCALATED,
        **CLOSING,
    },
    # Working an escalated exception does not take it back down: it stays in
    # the escalation queue until it is resolved.
    S.ESCALATED: {
        **dict.fromkeys(WORK, S.ESCALATED),
        A.ESCALATED: S.ESCALATED,
        **CLOSING,
    },
    S.RESOLVED: {},
    S.VOID: {},
}


class ExceptionConflict(Refused):
    """Someone else changed it first (resolved it, say), or the move makes no
    sense where it stands; the message says what."""


def next_status(status: str, *, action: str) -> str:
    """The status `action` moves an exception in `status` to; raises
    ExceptionConflict, naming both, if the table has no such move."""
    try:
        return TRANSITIONS[status][action]
    except KeyError:
        raise ExceptionConflict(
            f"An exception that is {ExceptionStatus(status).label.lower()} "
            f"cannot be {A(action).label.lower()}."
        ) from None
