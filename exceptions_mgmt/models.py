"""Delivery exceptions: every problem logged, worked, escalated and resolved.

An exception's `escalate_after` is the time its next escalation rule falls due;
the periodic sweep selects rows by it through a partial index over the
unresolved rows, so its cost follows the stale rows, not the table.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from shipments.models import Inquiry, Shipment, TrackingEvent


class Cause(models.TextChoices):
    WEATHER = "weather", _("Weather")
    ADDRESS = "address", _("Address issue")
    DAMAGED = "damaged", _("Damaged")
    LOST = "lost", _("Lost")
    CUSTOMS = "customs", _("Customs hold")
    FAILED_ATTEMPT = "failed_attempt", _("Failed delivery attempt")
    CARRIER_DELAY = "carrier_delay", _("Carrier delay")
    # Raised by the detection sweep, not typed by staff.
    LATE = "late", _("Past its estimated delivery")
    NO_SCAN = "no_scan", _("No scan for too long")
    OTHER = "other", _("Other")


# Causes a person picks; LATE and NO_SCAN come from the detection sweep.
REPORTABLE_CAUSES = [c for c in Cause if c not in (Cause.LATE, Cause.NO_SCAN)]
# Causes a customer may read by name. One typed by staff ("other") could name
# people: customers read a vague phrase instead.
PUBLIC_CAUSES = frozenset(c.value for c in Cause if c != Cause.OTHER)


class Severity(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")
    CRITICAL = "critical", _("Critical")


class ExceptionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    ESCALATED = "escalated", _("Escalated")
    RESOLVED = "resolved", _("Resolved")
    # Its report was voided by a supervisor's correction: there was no problem.
    VOID = "void", _("Void")


UNRESOLVED = (
    ExceptionStatus.OPEN,
    ExceptionStatus.IN_PROGRESS,
    ExceptionStatus.ESCALATED,
)


class Level(models.IntegerChoices):
    NONE = 0, _("Not escalated")
    SUPERVISORS = 1, _("Level 1: supervisors")
    MANAGERS = 2, _("Level 2: managers")


# The longest description; the views cut what they copy into one to it.
DESCRIPTION_LENGTH = 2000


class DeliveryException(models.Model):
    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, related_name="delivery_exceptions"
    )
    cause = models.CharField(max_length=20, choices=Cause.choices)
    cause_other = models.CharField(_("other cause"), max_length=120, blank=True)
    severity = models.CharField(
        max_length=10, choices=Severity.choices, default=Severity.MEDIUM
    )
    description = models.TextField(max_length=DESCRIPTION_LENGTH, blank=True)
    expected_resolution = models.DateTimeField()
    status = models.CharField(
        max_length=12, choices=ExceptionStatus.choices, default=ExceptionStatus.OPEN
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    escalation_level = models.PositiveSmallIntegerField(
        choices=Level.choices, default=Level.NONE
    )
    # When the next escalation rule falls due; NULL when none is left.
    escalate_after = models.DateTimeField(null=True, blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    reported_at = models.DateTimeField()
    # First time someone took it on (assigned, noted, moved to in progress).
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_notes = models.TextField(max_length=2000, blank=True)
    report_event = models.ForeignKey(
        TrackingEvent, null=True, on_delete=models.PROTECT, related_name="+"
    )
    # Detected exceptions: what was detected, so each is raised once.
    detection_key = models.CharField(max_length=64, blank=True)
    # The customer inquiry it was reported from, if any (same shipment).
    inquiry = models.ForeignKey(
        Inquiry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exceptions",
    )
    version = models.PositiveIntegerField(default=1)

    class Meta:
        permissions = [
            ("work_exception", "Can report, note and resolve exceptions"),
            ("supervise_exception", "Can see escalation levels and reassign"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["shipment", "detection_key"],
                condition=~Q(detection_key=""),
                name="exception_detected_once",
            ),
            # One open exception holds a shipment at a time.
            models.UniqueConstraint(
                fields=["shipment"],
                condition=Q(status__in=UNRESOLVED),
                name="exception_one_open_per_shipment",
                violation_error_message=_("This shipment has an open exception."),
            ),
            models.CheckConstraint(
                condition=~Q(cause="other") | ~Q(cause_other=""),
                name="exception_other_has_text",
            ),
        ]
        indexes = [
            # The escalation sweep: unresolved rows by deadline.
            models.Index(
                fields=["escalate_after", "id"],
                condition=Q(status__in=UNRESOLVED, escalate_after__isnull=False),
                name="exception_due",
            ),
            # The queue: unresolved rows by expected resolution.
            models.Index(
                fields=["expected_resolution", "id"],
                condition=Q(status__in=UNRESOLVED),
                name="exception_queue",
            ),
            models.Index(fields=["assignee", "status"], name="exception_assignee"),
            # Reports: the exceptions reported in a period.
            models.Index(fields=["reported_at"], name="exception_reported"),
        ]

    def __str__(self) -> str:
        return f"{self.shipment} — {self.cause_label}"

    def get_absolute_url(self) -> str:
        return reverse("exception-detail", args=[self.pk])

    @property
    def cause_label(self) -> str:
        if self.cause == Cause.OTHER and self.cause_other:
            return self.cause_other
        return str(Cause(self.cause).label)

    @property
    def public_cause(self) -> str:
        """The cause as customers read it, for the data of the events it
        writes: the listed cause's msgid, which the public page and the
        customers' messages translate for their reader; "" for a cause typed
        by staff."""
        if self.cause not in PUBLIC_CAUSES:
            return ""
        with translation.override(None):
            return str(Cause(self.cause).label)

    @property
    def is_resolved(self) -> bool:
        return self.status == ExceptionStatus.RESOLVED

    @property
    def is_void(self) -> bool:
        return self.status == ExceptionStatus.VOID

    @property
    def is_closed(self) -> bool:
        """Resolved or void: nothing more can be done with it."""
        return self.status not in UNRESOLVED


class ExceptionNote(models.Model):
    class Contact(models.TextChoices):
        NONE = "", _("Customer not contacted")
        PHONE = "phone", _("Phone")
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        CHAT = "chat", _("Chat")

    exception = models.ForeignKey(
        DeliveryException, on_delete=models.CASCADE, related_name="notes"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    text = models.TextField(max_length=2000)
    customer_contacted = models.BooleanField(default=False)
    contact_channel = models.CharField(
        max_length=8, choices=Contact.choices, blank=True
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.text[:60]


class ExceptionChange(models.Model):
    """Every change to an exception, with who and when (append-only). `data`
    holds what changed; people in it are user ids (`to` of an assignment),
    resolved to names when the history is shown."""

    class Action(models.TextChoices):
        REPORTED = "reported", _("Reported")
        ASSIGNED = "assigned", _("Assigned")
        NOTED = "noted", _("Noted")
        RESCHEDULED = "rescheduled", _("Rescheduled")
        ESCALATED = "escalated", _("Escalated")
        RESOLVED = "resolved", _("Resolved")
        CLOSED_WITH_SHIPMENT = "closed_with_shipment", _("Closed with the shipment")
        VOIDED = "voided", _("Voided")

    exception = models.ForeignKey(
        DeliveryException, on_delete=models.CASCADE, related_name="changes"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=24, choices=Action.choices)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} at {self.at:%Y-%m-%d %H:%M}"


class EscalationRule(models.Model):
    """Data a supervisor edits: how long an exception of a severity may stay
    unacknowledged, or unresolved, before it goes up to a level."""

    class When(models.TextChoices):
        UNACKNOWLEDGED = "unacknowledged", _("not acknowledged")
        UNRESOLVED = "unresolved", _("not resolved")

    severity = models.CharField(max_length=10, choices=Severity.choices)
    when = models.CharField(max_length=16, choices=When.choices)
    after = models.DurationField(help_text=_("Counted from when it was reported."))
    level = models.PositiveSmallIntegerField(
        choices=[
            (Level.SUPERVISORS, Level.SUPERVISORS.label),
            (Level.MANAGERS, Level.MANAGERS.label),
        ]
    )

    class Meta:
        ordering = ["severity", "after"]
        constraints = [
            models.UniqueConstraint(
                fields=["severity", "when", "level"], name="escalation_rule_unique"
            ),
            models.CheckConstraint(
                condition=Q(after__gt=timedelta(0)), name="escalation_rule_positive"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_severity_display()}: {self.get_when_display()} after "
            f"{self.after} → level {self.level}"
        )
