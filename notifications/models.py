"""Notifications: one row per message is both the outbox and the record.

A row is written in the transaction of the event that causes it, so a message
exists exactly when its event does. The unique `idempotency_key` (event +
channel + address) makes a second attempt to write it a no-op, and the
conditional claim in `delivery.notification_deliver` makes a second delivery
of its task a no-op: at-least-once Celery looks exactly-once to the customer.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from shipments.models import Shipment, TrackingEvent


class Kind(models.TextChoices):
    DISPATCHED = "dispatched", _("Dispatched")
    IN_TRANSIT = "in_transit", _("Picked up / in transit")
    OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
    AVAILABLE_FOR_PICKUP = "available_for_pickup", _("Available for pickup")
    DELIVERED = "delivered", _("Delivered")
    EXCEPTION = "exception", _("Exception")
    EXCEPTION_RESOLVED = "exception_resolved", _("Exception resolved")
    DELAY = "delay", _("Delay")
    # Staff messages: supervisors and managers hear about stale exceptions.
    ESCALATION = "escalation", _("Escalation (staff)")
    # The code that confirms an address added on the public tracking page.
    SUBSCRIPTION_CONFIRM = "subscription_confirm", _("Confirm updates")
    # A scheduled report's PDF, to staff and the schedule's addresses.
    REPORT = "report", _("Report (staff)")


# Kinds that go to customers, so have an SMS text and honour preferences.
CUSTOMER_KINDS = tuple(
    k
    for k in Kind
    if k not in (Kind.ESCALATION, Kind.SUBSCRIPTION_CONFIRM, Kind.REPORT)
)


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class Audience(models.TextChoices):
    RECIPIENT = "recipient", _("Recipient")
    SENDER = "sender", _("Sender")
    # Someone who added their address on the public tracking page.
    SUBSCRIBER = "subscriber", _("Subscriber")
    STAFF = "staff", _("Staff")


class Status(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    SUPPRESSED = "suppressed", _("Suppressed")


UNSENT = (Status.PENDING, Status.SENDING)


class Notification(models.Model):
    # Every message is about a shipment, except a report's email (`report`).
    shipment = models.ForeignKey(
        Shipment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
    )
    report = models.ForeignKey(
        "reports.ReportRun",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
    )
    # The event that caused it; empty for a resend (see `resend_of`).
    event = models.ForeignKey(
        TrackingEvent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    audience = models.CharField(max_length=12, choices=Audience.choices)
    # An email address or an E.164 phone number; what was entered when invalid.
    to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=255, blank=True)
    body_text = models.TextField(blank=True)
    body_html = models.TextField(blank=True)
    # An email exactly as the mail server gets it (RFC 5322 bytes), built when
    # the row is written: the worker only sends it. Empty for SMS, and for a
    # row written without it, which the worker builds when it sends.
    mime = models.BinaryField(blank=True, default=b"", editable=False)

    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    # A pending row is due at this time; a sending row's claim lapses at it
    # (the worker died), after which the sweeper hands it to another worker.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    idempotency_key = models.CharField(max_length=255, unique=True)
    resend_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resends",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # The address added on the tracking page that this message goes to.
    subscription = models.ForeignKey(
        "Subscription",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="notifications",
    )
    # Set on a failed row when staff send it again, so it leaves the failed list.
    superseded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("resend_notification", "Can resend or retry a notification"),
            ("preview_template", "Can preview message templates"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="notification_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=UNSENT) | Q(next_attempt_at__isnull=False),
                name="notification_unsent_has_deadline",
            ),
            models.CheckConstraint(
                condition=Q(shipment__isnull=False) | Q(report__isnull=False),
                name="notification_about_something",
            ),
        ]
        indexes = [
            models.Index(fields=["shipment", "-created_at"], name="notif_shipment"),
            # Reports: the messages written in a period.
            models.Index(fields=["created_at"], name="notif_created"),
            # The sweeper's scan: only unsent rows, a tiny part of the table.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status__in=UNSENT),
                name="notif_unsent_due",
            ),
            # The failed list and the dashboard count.
            models.Index(
                fields=["-created_at"],
                condition=Q(status=Status.FAILED, superseded_at__isnull=True),
                name="notif_failed_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.channel} to {self.to or '-'}"


class Preference(models.Model):
    """What one party of a shipment wants to hear about it. No row: both."""

    class Choice(models.TextChoices):
        BOTH = "both", _("Email and SMS")
        EMAIL = "email", _("Email only")
        SMS = "sms", _("SMS only")
        NONE = "none", _("No updates")

    shipment = models.ForeignKey(
        Shipment, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    audience = models.CharField(max_length=12, choices=Audience.choices)
    channels = models.CharField(max_length=8, choices=Choice.choices)
    updated_at = models.DateTimeField(auto_now=True)
    # Empty when the customer changed it through the link in a message.
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shipment", "audience"], name="preference_one_per_party"
            )
        ]

    def __str__(self) -> str:
        return f"{self.shipment} {self.audience}: {self.channels}"

    def allows(self, channel: str) -> bool:
        return self.channels in (self.Choice.BOTH, channel)


class MessageTemplate(models.Model):
    """An admin's replacement for the template file of one kind and channel."""

    kind = models.CharField(max_length=24, choices=Kind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    subject = models.CharField(
        max_length=255, blank=True, help_text=_("Email only. Django template syntax.")
    )
    body_text = models.TextField(
        help_text=_("The plain-text email, or the SMS text. Django template syntax.")
    )
    body_html = models.TextField(
        blank=True, help_text=_("Email only; empty sends plain text alone.")
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "channel"], name="message_template_one_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_channel_display()})"


class Subscription(models.Model):
    """An email address or phone number a customer added on the public tracking
    page. Nothing but the confirmation code goes to it until it is confirmed,
    so the page cannot be used to send mail to strangers."""

    shipment = models.ForeignKey(
        Shipment, on_delete=models.CASCADE, related_name="subscriptions"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # Normalised: a lower-case email or an E.164 phone number.
    address = models.CharField(max_length=254)
    # salted HMAC of the 6-digit code; the code itself is only in the message.
    code_hash = models.CharField(max_length=128)
    code_sent_at = models.DateTimeField()
    # Wrong codes entered; past the limit the code is void and a new one needed.
    failed_tries = models.PositiveSmallIntegerField(default=0)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shipment", "channel", "address"],
                name="subscription_one_per_address",
            )
        ]

    def __str__(self) -> str:
        return f"{self.shipment} {self.channel} subscription"

    @property
    def is_active(self) -> bool:
        return self.confirmed_at is not None and self.stopped_at is None


# --- Outbound webhooks ------------------------------------------------------


class WebhookEventType(models.TextChoices):
    """What an integration can subscribe an endpoint to (the payload's `type`)."""

    SHIPMENT_CREATED = "shipment.created", _("Shipment created")
    SHIPMENT_STATUS_CHANGED = "shipment.status_changed", _("Status changed")
    CHECKPOINT_RECORDED = "checkpoint.recorded", _("Checkpoint recorded")
    EXCEPTION_OPENED = "exception.opened", _("Exception opened")
    EXCEPTION_RESOLVED = "exception.resolved", _("Exception resolved")
    SHIPMENT_ETA_CHANGED = "shipment.eta_changed", _("Estimated delivery changed")
    SHIPMENT_DELIVERED = "shipment.delivered", _("Delivered")


# Sent by "Send test event"; no endpoint subscribes to it.
WEBHOOK_TEST_TYPE = "webhook.test"


def validate_webhook_url(value: str) -> None:
    """http or https only; the address it names is checked when sending."""
    scheme = value.partition(":")[0].lower()
    if scheme not in ("http", "https"):
        raise ValidationError(
            _("Use an http:// or https:// URL, not “%(scheme)s:”."),
            params={"scheme": scheme},
        )


def validate_event_types(value: object) -> None:
    if not isinstance(value, list) or not value:
        raise ValidationError(_("Subscribe the endpoint to at least one event type."))
    unknown = sorted({str(v) for v in value} - set(WebhookEventType.values))
    if unknown:
        raise ValidationError(
            _("Unknown event type: %(types)s."), params={"types": ", ".join(unknown)}
        )


def new_endpoint_code() -> str:
    return "ep_" + secrets.token_hex(8)


class WebhookEndpoint(models.Model):
    """A URL of an integration's that is sent the events it subscribes to,
    signed with its secret (Standard Webhooks). During a rotation the previous
    secret signs too, until `previous_secret_expires_at`."""

    # The endpoint's id in the API and its URLs.
    code = models.CharField(
        max_length=24, unique=True, default=new_endpoint_code, editable=False
    )
    integration = models.ForeignKey(
        "tracksop.Integration", on_delete=models.PROTECT, related_name="webhooks"
    )
    url = models.URLField(
        "URL",
        max_length=2000,
        validators=[validate_webhook_url],
        help_text=_("Where events are POSTed (http or https)."),
    )
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, validators=[validate_event_types])
    # `whsec_` + base64 of 32 random bytes; the receiver needs it to verify.
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(
        null=True, blank=True, editable=False
    )
    is_active = models.BooleanField(default=True, editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True, editable=False)
    # Set when the integration's contact was told it was disabled: told once.
    contact_notified_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The first failed attempt since the last success; 5 days of it disables.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        ordering = ["integration__name", "url", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_active=True) | Q(disabled_at__isnull=False),
                name="webhook_disabled_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.integration.name}: {self.url}"


class WebhookStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed")


WEBHOOK_UNSENT = (WebhookStatus.PENDING, WebhookStatus.SENDING)


class WebhookMessage(models.Model):
    """One event for one endpoint: the outbox row, written in the event's
    transaction, and the message as sent. `payload` is the exact body; every
    attempt (retries, replays) sends these bytes under the same webhook-id."""

    # Indexed by webhook_msg_endpoint below.
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.PROTECT,
        related_name="messages",
        db_index=False,
    )
    # The event it tells of; empty for a test event. No database constraint:
    # the retention purge removes expired shipments and their events with
    # plain DELETEs, and a delivery log is not part of the tracking record
    # (the payload says everything the message was about).
    event = models.ForeignKey(
        TrackingEvent,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    shipment_code = models.CharField("shipment ID", max_length=32, blank=True)
    event_type = models.CharField(max_length=40)
    # The webhook-id header: the receiver's de-duplication key.
    message_id = models.CharField(max_length=40, unique=True, editable=False)
    # event:<event id>:<type>:<endpoint id>, so writing it twice is a no-op.
    idempotency_key = models.CharField(max_length=120, unique=True, editable=False)
    payload = models.TextField(editable=False)
    status = models.CharField(
        max_length=12, choices=WebhookStatus.choices, default=WebhookStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # A pending row is due at this time; a sending row's claim lapses at it.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("webhook message")
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=WebhookStatus.values),
                name="webhook_message_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=WEBHOOK_UNSENT)
                | Q(next_attempt_at__isnull=False),
                name="webhook_unsent_has_deadline",
            ),
        ]
        indexes = [
            # The delivery log of one endpoint, newest first.
            models.Index(fields=["endpoint", "-id"], name="webhook_msg_endpoint"),
            # The sweeper's scan: only unsent rows, a tiny part of the table.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status__in=WEBHOOK_UNSENT),
                name="webhook_msg_unsent_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} to {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP request of a message and what came back: the delivery log.
    The body sent is the message's payload (the same bytes every time)."""

    # Both indexed below, with the newest first.
    message = models.ForeignKey(
        WebhookMessage,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        db_index=False,
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="attempts",
        db_index=False,
    )
    number = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The first few hundred characters of the body, for the log.
    response_excerpt = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("webhook attempt")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["endpoint", "-id"], name="webhook_att_endpoint"),
            models.Index(fields=["message", "-id"], name="webhook_att_message"),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of {self.message_id}"
