"""When to ask a carrier again about a shipment: pure rules, no I/O.

The carrier sync (`shipments.carriers.due` and `.sync`) stores one due time
per shipment (`CarrierSync.next_due_at`) and asks these functions for the
next one after each attempt. The numbers come from the TRACKSOP_CARRIER_SYNC setting
(`cadence_settings`: DEFAULTS with the environment's overrides).

Due times are spread: each shipment has its own fixed fraction (`spread`), so
50,000 shipments first seen in the same minute fall due across a whole
interval, and a batch synced at one instant does not fall due again at one
instant (each next time is the interval ± `jitter_percent`, by shipment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shipments.status import CLOSED, ShipmentStatus

# The names, with their unit, and the defaults of TRACKSOP_CARRIER_SYNC.
DEFAULTS: dict[str, float] = {
    # A shipment on its way is asked about this often...
    "interval_minutes": 120,
    # ...this often while it is out for delivery (the door is near)...
    "out_for_delivery_minutes": 20,
    # ...and this often once the carrier has shown no movement for a while.
    "quiet_after_days": 3,
    "quiet_interval_minutes": 360,
    # A number the carrier does not know (yet: labels are often registered
    # late) is asked about this often, until this many days have passed.
    "unknown_interval_minutes": 360,
    "unknown_give_up_days": 7,
    # Following ends this long after the carrier's last movement.
    "stop_after_days": 30,
    # Each next due time is its interval ± this share of it, per shipment.
    "jitter_percent": 10,
    # After a failed request for a shipment: retry after this, doubling, up
    # to the normal interval.
    "error_retry_minutes": 5,
    # A carrier's 429 without Retry-After, or its 5xx: the account waits
    # this, doubling with each failure in a row, up to the maximum.
    "backoff_base_seconds": 30,
    "backoff_max_minutes": 30,
    # The most a carrier's Retry-After is honoured (a daily quota says 24 h).
    "retry_after_max_hours": 24,
    # An account whose credentials are refused is tried again this often
    # (one request each time, until it works).
    "failing_retry_minutes": 30,
    # A queued batch holds its shipments this long; if its task is lost they
    # are due again after it.
    "lease_minutes": 15,
    # Carrier requests one batch task makes, and how many at once.
    "requests_per_task": 8,
    "threads": 4,
    # Sync now on the shipment page waits this long for the carrier (each
    # request is also bounded by TRACKSOP_CARRIER_TIMEOUT; the first one of
    # a process includes loading karrio).
    "sync_now_timeout_seconds": 20,
}
WHOLE = frozenset({"requests_per_task", "threads"})

# CarrierSync.Result's values (the model's choices; a test keeps them equal).
OK = "ok"
UNKNOWN_NUMBER = "unknown_number"
ERROR = "error"
ACCOUNT_FAILING = "account_failing"
RATE_LIMITED = "rate_limited"


def cadence_settings(overrides: Mapping[str, str]) -> dict[str, float]:
    """DEFAULTS with the overrides given as text ("interval_minutes=60");
    ValueError that names the entry when one is unknown or not a positive
    number."""
    values = dict(DEFAULTS)
    for name, text in overrides.items():
        if name not in DEFAULTS:
            raise ValueError(
                f"TRACKSOP_CARRIER_SYNC has no setting {name!r}; the settings are "
                + ", ".join(DEFAULTS)
                + "."
            )
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if value <= 0 or (name in WHOLE and not value.is_integer()):
            kind = "a whole number" if name in WHOLE else "a number"
            raise ValueError(
                f"TRACKSOP_CARRIER_SYNC {name} must be {kind} above zero, not {text!r}."
            )
        values[name] = value
    return values


@dataclass(frozen=True)
class Cadence:
    interval: timedelta
    out_for_delivery: timedelta
    quiet_after: timedelta
    quiet_interval: timedelta
    unknown_interval: timedelta
    unknown_give_up: timedelta
    stop_after: timedelta
    jitter: float  # a fraction: 0.1 is ±10 %
    error_retry: timedelta
    backoff_base: timedelta
    backoff_max: timedelta
    retry_after_max: timedelta
    failing_retry: timedelta
    lease: timedelta
    requests_per_task: int  # carrier requests one batch task makes...
    threads: int  # ...and how many at once
    sync_now_timeout: float  # seconds Sync now waits for the carrier

    @classmethod
    def from_settings(cls, values: Mapping[str, float]) -> Cadence:
        v = {**DEFAULTS, **values}
        return cls(
            interval=timedelta(minutes=v["interval_minutes"]),
            out_for_delivery=timedelta(minutes=v["out_for_delivery_minutes"]),
            quiet_after=timedelta(days=v["quiet_after_days"]),
            quiet_interval=timedelta(minutes=v["quiet_interval_minutes"]),
            unknown_interval=timedelta(minutes=v["unknown_interval_minutes"]),
            unknown_give_up=timedelta(days=v["unknown_give_up_days"]),
            stop_after=timedelta(days=v["stop_after_days"]),
            jitter=min(v["jitter_percent"], 100) / 100,
            error_retry=timedelta(minutes=v["error_retry_minutes"]),
            backoff_base=timedelta(seconds=v["backoff_base_seconds"]),
            backoff_max=timedelta(minutes=v["backoff_max_minutes"]),
            retry_after_max=timedelta(hours=v["retry_after_max_hours"]),
            failing_retry=timedelta(minutes=v["failing_retry_minutes"]),
            lease=timedelta(minutes=v["lease_minutes"]),
            requests_per_task=int(v["requests_per_task"]),
            threads=int(v["threads"]),
            sync_now_timeout=float(v["sync_now_timeout_seconds"]),
        )


def spread(key: int) -> float:
    """A fraction in [0, 1), the same for a shipment every time: Knuth's
    multiplicative hash, which scatters consecutive ids evenly."""
    return ((key * 2654435761) % 2**32) / 2**32


def jittered(period: timedelta, *, key: int, cadence: Cadence) -> timedelta:
    """The period ± the jitter, by shipment."""
    return period * (1 - cadence.jitter + 2 * cadence.jitter * spread(key))


def period_for(
    *, status: str, now: datetime, moved_at: datetime | None, cadence: Cadence
) -> timedelta:
    """How long a shipment in this state waits between two syncs."""
    if status == ShipmentStatus.OUT_FOR_DELIVERY:
        return cadence.out_for_delivery
    if moved_at is not None and now - moved_at >= cadence.quiet_after:
        return cadence.quiet_interval
    return cadence.interval


def first_due(*, key: int, status: str, now: datetime, cadence: Cadence) -> datetime:
    """The due time of a shipment seen for the first time: somewhere within
    one period from now, by shipment, so that many new ones do not come due
    in the same second."""
    period = period_for(status=status, now=now, moved_at=None, cadence=cadence)
    return now + period * spread(key)


def moved_at(
    *, last_movement_at: datetime | None, dispatched_at: datetime | None
) -> datetime | None:
    """When the package last moved as far as we know: the carrier's latest
    event, else its dispatch."""
    return last_movement_at or dispatched_at


def next_sync(
    *,
    key: int,
    now: datetime,
    status: str,
    result: str,
    failures: int = 0,
    last_movement_at: datetime | None = None,
    dispatched_at: datetime | None = None,
    unknown_since: datetime | None = None,
    not_before: datetime | None = None,
    cadence: Cadence,
) -> datetime | None:
    """When to ask the carrier about the shipment next, after an attempt
    that ended with `result`; None when following it has ended (a closed
    record, 30 days without movement, a number unknown for too long).
    `not_before`: the account's back-off, when it has one."""
    if status in CLOSED:
        return None
    moved = moved_at(last_movement_at=last_movement_at, dispatched_at=dispatched_at)
    if moved is not None and now - moved >= cadence.stop_after:
        return None
    if result == UNKNOWN_NUMBER:
        if unknown_since is not None and now - unknown_since >= cadence.unknown_give_up:
            return None
        return now + jittered(cadence.unknown_interval, key=key, cadence=cadence)
    if result == ERROR:
        retry = cadence.error_retry * 2 ** min(max(failures - 1, 0), 20)
        due = now + jittered(min(retry, cadence.interval), key=key, cadence=cadence)
        return max(due, not_before) if not_before else due
    if result in (ACCOUNT_FAILING, RATE_LIMITED):
        # Right after the account's back-off, spread over a few minutes so
        # the batch that was refused does not come back as one.
        start = max(not_before or now, now)
        return start + cadence.error_retry * spread(key)
    period = period_for(status=status, now=now, moved_at=moved, cadence=cadence)
    return now + jittered(period, key=key, cadence=cadence)


def account_backoff(
    *, failures: int, retry_after: float | None, cadence: Cadence
) -> timedelta:
    """How long an account waits after a refused request (429 or 5xx): what
    the carrier asked for, else doubling with each failure in a row."""
    if retry_after is not None and retry_after > 0:
        return min(timedelta(seconds=retry_after), cadence.retry_after_max)
    doubled = cadence.backoff_base * int(2 ** min(max(failures - 1, 0), 20))
    return min(doubled, cadence.backoff_max)
