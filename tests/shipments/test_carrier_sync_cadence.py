"""The carrier sync's cadence: pure rules over frozen times (no database).

How often a followed shipment is asked about, how due times spread so that
many shipments never fall due in the same second, when following stops, and
how long an account backs off after the carrier refuses it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from statistics import pstdev

import pytest
import time_machine

from shipments.carriers import cadence as c
from shipments.carriers.cadence import Cadence, cadence_settings, next_sync
from shipments.models import CarrierSync
from shipments.status import ShipmentStatus

S = ShipmentStatus
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CADENCE = Cadence.from_settings(c.DEFAULTS)


@pytest.fixture(autouse=True)
def _frozen() -> object:
    with time_machine.travel(NOW, tick=False):
        yield


def after(
    *, status: str = S.IN_TRANSIT, result: str = c.OK, key: int = 7, **kw: object
) -> timedelta | None:
    due = next_sync(
        key=key,
        now=NOW,
        status=status,
        result=result,
        cadence=CADENCE,
        dispatched_at=kw.pop("dispatched_at", NOW - timedelta(days=1)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return None if due is None else due - NOW


def due_after(*, key: int) -> timedelta:
    """`after` for a moving shipment, which is always due again."""
    wait = after(key=key)
    assert wait is not None
    return wait


def test_the_results_it_knows_are_the_models() -> None:
    assert {c.OK, c.UNKNOWN_NUMBER, c.ERROR, c.ACCOUNT_FAILING, c.RATE_LIMITED} == set(
        CarrierSync.Result.values
    )


def test_a_moving_shipment_is_asked_about_every_two_hours_give_or_take_a_tenth() -> (
    None
):
    waits = [due_after(key=key) for key in range(1, 500)]
    assert all(timedelta(minutes=108) <= w <= timedelta(minutes=132) for w in waits)
    # Spread across the whole ±12 minutes, not clumped at one end.
    assert min(waits) < timedelta(minutes=110)
    assert max(waits) > timedelta(minutes=130)


def test_the_jitter_is_the_same_for_a_shipment_every_time() -> None:
    assert after(key=12345) == after(key=12345)
    assert after(key=12345) != after(key=12346)


def test_out_for_delivery_is_asked_about_every_twenty_minutes() -> None:
    wait = after(status=S.OUT_FOR_DELIVERY)
    assert wait is not None
    assert timedelta(minutes=18) <= wait <= timedelta(minutes=22)


def test_after_three_days_without_movement_it_is_asked_every_six_hours() -> None:
    quiet = after(last_movement_at=NOW - timedelta(days=3, minutes=1))
    lively = after(last_movement_at=NOW - timedelta(days=2, hours=23))
    assert quiet is not None
    assert lively is not None
    assert timedelta(hours=5.4) <= quiet <= timedelta(hours=6.6)
    assert lively <= timedelta(minutes=132)


def test_without_carrier_events_the_dispatch_counts_as_the_last_movement() -> None:
    wait = after(dispatched_at=NOW - timedelta(days=4))
    assert wait is not None
    assert wait >= timedelta(hours=5.4)


def test_following_stops_thirty_days_after_the_last_movement() -> None:
    assert after(last_movement_at=NOW - timedelta(days=30)) is None
    assert after(last_movement_at=NOW - timedelta(days=29, hours=23)) is not None
    assert after(dispatched_at=NOW - timedelta(days=31)) is None


@pytest.mark.parametrize("status", [S.DELIVERED, S.RETURNED, S.CANCELLED])
def test_following_stops_when_the_record_is_closed(status: str) -> None:
    assert after(status=status) is None


def test_an_exception_held_shipment_keeps_the_normal_cadence() -> None:
    wait = after(status=S.EXCEPTION)
    assert wait is not None
    assert timedelta(minutes=108) <= wait <= timedelta(minutes=132)


def test_an_unknown_number_is_retried_every_six_hours_then_given_up() -> None:
    first = after(result=c.UNKNOWN_NUMBER, unknown_since=NOW)
    assert first is not None
    assert timedelta(hours=5.4) <= first <= timedelta(hours=6.6)
    assert (
        after(result=c.UNKNOWN_NUMBER, unknown_since=NOW - timedelta(days=6, hours=23))
        is not None
    )
    assert after(result=c.UNKNOWN_NUMBER, unknown_since=NOW - timedelta(days=7)) is None


def test_errors_retry_sooner_doubling_up_to_the_normal_interval() -> None:
    waits = [after(result=c.ERROR, failures=n, key=1) for n in (1, 2, 3, 4, 10)]
    base = waits[0]
    assert base is not None
    assert timedelta(minutes=4.5) <= base <= timedelta(minutes=5.5)
    for wait, factor in zip(waits[1:4], (2, 4, 8), strict=True):
        assert wait is not None
        assert abs(wait - factor * base) < timedelta(seconds=1)
    assert waits[4] == after(key=1)  # capped at the normal interval


def test_an_error_while_the_account_backs_off_waits_for_the_back_off() -> None:
    until = NOW + timedelta(minutes=30)
    due = next_sync(
        key=3,
        now=NOW,
        status=S.IN_TRANSIT,
        result=c.ERROR,
        failures=1,
        not_before=until,
        cadence=CADENCE,
    )
    assert due == until


@pytest.mark.parametrize("result", [c.RATE_LIMITED, c.ACCOUNT_FAILING])
def test_refused_shipments_come_back_just_after_the_accounts_back_off(
    result: str,
) -> None:
    until = NOW + timedelta(minutes=10)
    dues = [
        next_sync(
            key=key,
            now=NOW,
            status=S.IN_TRANSIT,
            result=result,
            not_before=until,
            cadence=CADENCE,
        )
        for key in range(1, 40)
    ]
    assert all(until <= d < until + timedelta(minutes=5) for d in dues)  # type: ignore[operator]
    assert len(set(dues)) == len(dues)


def test_fifty_thousand_new_shipments_fall_due_evenly_over_two_hours() -> None:
    dues = [
        c.first_due(key=key, status=S.IN_TRANSIT, now=NOW, cadence=CADENCE)
        for key in range(1, 50_001)
    ]
    assert min(dues) >= NOW
    assert max(dues) < NOW + timedelta(hours=2)
    per_minute = [0] * 120
    for due in dues:
        per_minute[int((due - NOW).total_seconds() // 60)] += 1
    # About 417 a minute, none far off: no minute gets a pile.
    assert min(per_minute) > 380
    assert max(per_minute) < 450
    assert pstdev(per_minute) < 20
    # And never many in the same second.
    per_second: dict[int, int] = {}
    for due in dues:
        second = int((due - NOW).total_seconds())
        per_second[second] = per_second.get(second, 0) + 1
    assert max(per_second.values()) <= 12


def test_new_shipments_out_for_delivery_fall_due_within_twenty_minutes() -> None:
    dues = [
        c.first_due(key=key, status=S.OUT_FOR_DELIVERY, now=NOW, cadence=CADENCE)
        for key in range(1, 200)
    ]
    assert max(dues) < NOW + timedelta(minutes=20)


def test_the_account_backs_off_as_the_carrier_asks_or_doubling() -> None:
    assert c.account_backoff(failures=1, retry_after=90, cadence=CADENCE) == timedelta(
        seconds=90
    )
    assert c.account_backoff(
        failures=1, retry_after=None, cadence=CADENCE
    ) == timedelta(seconds=30)
    assert c.account_backoff(
        failures=3, retry_after=None, cadence=CADENCE
    ) == timedelta(seconds=120)
    assert c.account_backoff(
        failures=30, retry_after=None, cadence=CADENCE
    ) == timedelta(minutes=30)
    # A daily quota's Retry-After is honoured up to a day.
    assert c.account_backoff(
        failures=1, retry_after=10 * 86400, cadence=CADENCE
    ) == timedelta(hours=24)


def test_the_setting_takes_overrides_from_the_environment() -> None:
    values = cadence_settings({"interval_minutes": "60", "threads": "8"})
    assert values["interval_minutes"] == 60
    assert values["threads"] == 8
    assert values["out_for_delivery_minutes"] == 20
    cadence = Cadence.from_settings(values)
    assert cadence.interval == timedelta(hours=1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"intervl_minutes": "60"}, "no setting 'intervl_minutes'"),
        ({"interval_minutes": "soon"}, "interval_minutes must be a number above zero"),
        ({"interval_minutes": "0"}, "must be a number above zero"),
        ({"threads": "2.5"}, "threads must be a whole number above zero"),
    ],
)
def test_a_bad_setting_names_what_is_wrong(
    overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        cadence_settings(overrides)


def test_the_settings_refuse_to_start_with_a_bad_cadence() -> None:
    from tests.test_deploy import PRODUCTION, production_manage

    result = production_manage(
        "check", env=PRODUCTION | {"TRACKSOP_CARRIER_SYNC": "interval_minutes=-5"}
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "TRACKSOP_CARRIER_SYNC interval_minutes must be a number" in result.stderr
