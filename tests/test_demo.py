"""`make run`'s demo data: what someone trying TrackSOP first sees."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from notifications.models import Notification, Status
from notifications.selectors import failed_count

pytestmark = pytest.mark.django_db


def test_the_demo_has_every_role_and_a_message_history_with_some_failures() -> None:
    call_command("seed_demo", shipments=150, verbosity=0)
    call_command("seed_demo_notifications", shipments=100, verbosity=0)

    assert set(User.objects.values_list("username", flat=True)) >= {
        "admin",
        "logistics",
        "cs",
        "supervisor",
        "manager",
    }
    assert Notification.objects.filter(status=Status.SENT).count() > 100
    assert failed_count() > 0
    # Nothing was queued: the demo history is already sent, not a flood of mail.
    assert not Notification.objects.filter(status=Status.PENDING).exists()

    # Run again (a second `make run`): nothing is added.
    seeded = Notification.objects.count()
    call_command("seed_demo_notifications", verbosity=0)
    assert Notification.objects.count() == seeded
