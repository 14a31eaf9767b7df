"""The shipments app's tables: carriers and locations, the shipment, its
append-only event log, the desk's inquiries, feedback, the access log, and the
carrier integration's accounts, webhooks and sync rows.

Kept whole past 500 lines on purpose: these are one app's models, most of the
length is field declarations, constraints and indexes (no logic; rules live in
`shipments.status` and the services), and one file is where Django and a
reader expect them; splitting would buy a package of re-exports and nothing
easier to find.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Upper
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from phonenumber_field.modelfields import PhoneNumberField

from shipments.status import CLOSED, MOVING, OPEN, EventKind, ShipmentStatus
from shipments.tracking_numbers import FAMILY_LABELS, Family

# Crockford-style alphabet without look-alikes (0/O, 1/I/L) for codes people read out.
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

shipment_id_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{2,31}$",
    _("Use 3 to 32 letters, digits or dashes, starting with a letter or digit."),
)


def _positive(what: str, smallest: str) -> MinValueValidator:
    return MinValueValidator(
        Decimal(smallest), message=f"{what} must be more than zero."
    )


def new_shipment_code() -> str:
    return "SH-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


def new_public_token() -> str:
    # 128 random bits: the public link must not be guessable or sequential.
    return secrets.token_urlsafe(16)


class Source(models.TextChoices):
    FORM = "form", _("Form")
    BULK_SCAN = "bulk_scan", _("Bulk scan")
    API = "api", _("API")
    WEBHOOK = "webhook", _("Webhook")
    IMPORT = "import", _("Import")
    SYSTEM = "system", _("System")
    CARRIER = "carrier", _("Carrier tracking")


class PushFormat(models.TextChoices):
    """How a carrier's push webhook is signed and shaped (`carrier_formats`)."""

    GENERIC = "generic", _("TrackSOP signed JSON")
    UPS_TRACK_ALERT = "ups_track_alert", _("UPS Track Alert")


class TrackingProvider(models.TextChoices):
    """Carriers whose tracking API the sync polls (karrio's carrier names)."""

    UPS = "ups", _("UPS")
    FEDEX = "fedex", _("FedEx")
    USPS = "usps", _("USPS")
    DHL_EXPRESS = "dhl_express", _("DHL Express")


class Carrier(models.Model):
    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    tracking_family = models.CharField(
        max_length=20,
        choices=[(f.value, label) for f, label in FAMILY_LABELS.items()],
        help_text=_("Format its tracking numbers follow; checked on dispatch."),
    )
    is_own_fleet = models.BooleanField(
        default=False, help_text=_("Our own vehicles: tracking numbers are generated.")
    )
    tracking_url_template = models.URLField(
        max_length=300,
        blank=True,
        help_text=_("Carrier's tracking page, with {number} where the number goes."),
    )
    is_active = models.BooleanField(default=True)
    push_format = models.CharField(
        max_length=20,
        choices=PushFormat.choices,
        default=PushFormat.GENERIC,
        help_text=_(
            "Format of the carrier's pushes to /api/v1/carriers/<code>/webhook/; "
            "the secret is TRACKSOP_CARRIER_WEBHOOK_SECRETS in the environment."
        ),
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def family(self) -> Family:
        return Family(self.tracking_family)


class Location(models.Model):
    class Kind(models.TextChoices):
        HUB = "hub", _("Hub")
        DEPOT = "depot", _("Delivery depot")
        WAREHOUSE = "warehouse", _("Warehouse")
        PICKUP_POINT = "pickup_point", _("Pickup point")

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HUB)
    city = models.CharField(max_length=100)
    country = models.CharField(max_length=2, help_text=_("ISO 3166 code, e.g. US"))
    timezone = models.CharField(max_length=64, default="UTC")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.city})"


def default_language() -> str:
    return str(settings.TRACKSOP_DEFAULT_LANGUAGE)


class Shipment(models.Model):
    shipment_id = models.CharField(
        _("shipment ID"), max_length=32, unique=True, validators=[shipment_id_validator]
    )
    order_number = models.CharField(max_length=64)

    sender_name = models.CharField(max_length=200)
    sender_email = models.EmailField(blank=True)
    sender_phone = PhoneNumberField(blank=True)
    sender_address = models.TextField(max_length=500)
    notify_sender = models.BooleanField(
        default=False, help_text=_("Also send the tracking number to the sender.")
    )

    recipient_name = models.CharField(max_length=200)
    # The language the recipient's messages are written in.
    language = models.CharField(
        _("language of messages"),
        max_length=8,
        choices=settings.LANGUAGES,
        default=default_language,
        help_text=_("The recipient's messages are written in this language."),
    )
    recipient_email = models.EmailField(blank=True)
    recipient_phone = PhoneNumberField(blank=True)
    recipient_address = models.TextField(max_length=500)
    recipient_postcode = models.CharField(max_length=16)
    recipient_city = models.CharField(max_length=100)
    recipient_country = models.CharField(max_length=2)

    weight_kg = models.DecimalField(
        _("weight (kg)"),
        max_digits=9,
        decimal_places=3,
        validators=[_positive("Weight", "0.001")],
    )
    length_cm = models.DecimalField(
        _("length (cm)"),
        max_digits=7,
        decimal_places=1,
        validators=[_positive("Length", "0.1")],
    )
    width_cm = models.DecimalField(
        _("width (cm)"),
        max_digits=7,
        decimal_places=1,
        validators=[_positive("Width", "0.1")],
    )
    height_cm = models.DecimalField(
        _("height (cm)"),
        max_digits=7,
        decimal_places=1,
        validators=[_positive("Height", "0.1")],
    )
    contents = models.TextField(max_length=1000)
    pieces = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1, message="A shipment has at least one piece.")],
    )

    # The final quality and quantity check before dispatch.
    checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    checked_at = models.DateTimeField(null=True, blank=True)
    quality_ok = models.BooleanField(null=True, blank=True)
    quantity_ok = models.BooleanField(null=True, blank=True)
    check_notes = models.TextField(max_length=1000, blank=True)

    carrier = models.ForeignKey(
        Carrier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # NULL, not "", until dispatch: the unique constraint ignores NULLs.
    tracking_number = models.CharField(max_length=40, null=True, blank=True)  # noqa: DJ001
    estimated_delivery = models.DateField(null=True, blank=True)
    # The ETA given at dispatch, never moved by a later ETA change: reports
    # judge on-time delivery against the promise made when it left.
    dispatch_eta = models.DateField(null=True, blank=True, editable=False)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    # Derived from the event log by the services; stored so lists need no replay.
    status = models.CharField(
        max_length=24, choices=ShipmentStatus.choices, default=ShipmentStatus.CREATED
    )
    status_changed_at = models.DateTimeField()
    # Where an open exception's resolution returns the shipment to.
    resume_status = models.CharField(
        max_length=24, choices=ShipmentStatus.choices, default=ShipmentStatus.CREATED
    )
    last_event_at = models.DateTimeField()
    current_location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The first place it was scanned at (its origin hub, for reports).
    origin = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
        verbose_name=_("origin hub"),
    )

    public_token = models.CharField(
        max_length=32, unique=True, default=new_public_token
    )
    # Bumped by every service write; forms carry it to catch concurrent edits.
    version = models.PositiveIntegerField(default=1)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("verify_shipment", "Can verify a shipment for dispatch"),
            ("dispatch_shipment", "Can dispatch a shipment"),
            ("cancel_shipment", "Can cancel a shipment before dispatch"),
            ("record_checkpoint", "Can log checkpoints and bulk scans"),
            ("correct_event", "Can void a wrong event"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tracking_number"],
                condition=models.Q(tracking_number__isnull=False),
                name="shipment_tracking_number_unique",
                violation_error_message=_("Another shipment has this tracking number."),
            ),
            models.CheckConstraint(
                condition=models.Q(weight_kg__gt=0),
                name="shipment_weight_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(length_cm__gt=0, width_cm__gt=0, height_cm__gt=0),
                name="shipment_dimensions_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(pieces__gte=1), name="shipment_pieces_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=ShipmentStatus.values),
                name="shipment_status_valid",
            ),
            # A dispatched shipment always has its carrier and tracking number.
            models.CheckConstraint(
                condition=models.Q(
                    status__in=[
                        ShipmentStatus.CREATED,
                        ShipmentStatus.READY,
                        ShipmentStatus.CANCELLED,
                    ]
                )
                | models.Q(
                    carrier__isnull=False,
                    tracking_number__isnull=False,
                    dispatched_at__isnull=False,
                ),
                name="shipment_dispatched_has_tracking",
            ),
        ]
        indexes = [
            # Search: order numbers and emails are matched case-insensitively.
            models.Index(Upper("order_number"), name="shipment_order_upper"),
            models.Index(Upper("recipient_email"), name="shipment_email_upper"),
            models.Index(fields=["recipient_phone"], name="shipment_phone"),
            # Monitor: open shipments by status, then by ETA / dispatch date.
            models.Index(
                fields=["status", "estimated_delivery"], name="shipment_status_eta"
            ),
            models.Index(
                fields=["status", "dispatched_at"], name="shipment_status_dispatch"
            ),
            models.Index(fields=["carrier", "status"], name="shipment_carrier_status"),
            models.Index(
                fields=["current_location", "status"], name="shipment_loc_status"
            ),
            models.Index(fields=["-created_at"], name="shipment_created"),
            # Reports: the shipments dispatched or delivered in a period.
            models.Index(fields=["dispatched_at"], name="shipment_dispatched"),
            models.Index(fields=["delivered_at"], name="shipment_delivered"),
            # The monitor and dashboard read only open shipments: a few
            # percent of a year's rows, so a partial index stays small.
            models.Index(
                fields=["estimated_delivery", "dispatched_at", "id"],
                condition=models.Q(status__in=OPEN),
                name="shipment_open_eta",
            ),
            # Detection of stalled packages: moving ones by their last scan.
            models.Index(
                fields=["last_event_at", "id"],
                condition=models.Q(status__in=sorted(MOVING)),
                name="shipment_moving_last_event",
            ),
            # Detection of late packages: moving ones by ETA, so the sweep
            # reads only those past it (not the held or delivered ones).
            models.Index(
                fields=["estimated_delivery", "id"],
                condition=models.Q(status__in=sorted(MOVING)),
                name="shipment_moving_eta",
            ),
        ]

    def __str__(self) -> str:
        return self.shipment_id

    def get_absolute_url(self) -> str:
        return reverse("shipment-detail", args=[self.shipment_id])

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED

    @property
    def tracking_url(self) -> str:
        if self.carrier and self.tracking_number and self.carrier.tracking_url_template:
            return self.carrier.tracking_url_template.replace(
                "{number}", self.tracking_number
            )
        return ""


class TrackingEvent(models.Model):
    """One checkpoint in a shipment's life. Append-only: never edited or deleted;
    a wrong event is voided by a later CORRECTION event."""

    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, related_name="events"
    )
    kind = models.CharField(max_length=24, choices=EventKind.choices)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    location = models.ForeignKey(
        Location, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # Name of the integration (API key, carrier feed) when no person recorded it.
    integration = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    notes = models.TextField(max_length=2000, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    voids = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="voided_by",
    )
    # Status after this event was applied, for the timeline and reports.
    status_after = models.CharField(max_length=24, choices=ShipmentStatus.choices)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            # Re-delivery of the same carrier event is harmless.
            models.UniqueConstraint(
                fields=["shipment", "external_id"],
                condition=~models.Q(external_id=""),
                name="event_external_id_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(kind__in=EventKind.values), name="event_kind_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["shipment", "occurred_at"], name="event_timeline"),
            # Reports scan the log by time and kind.
            models.Index(fields=["occurred_at", "kind"], name="event_time_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class Inquiry(models.Model):
    """A customer's question to customer service about one shipment, and the
    answer. Staff only: it appears in the staff timeline, never in public."""

    class Channel(models.TextChoices):
        PHONE = "phone", _("Phone")
        EMAIL = "email", _("Email")
        CHAT = "chat", _("Chat")
        SMS = "sms", _("SMS")
        SOCIAL = "social", _("Social media")
        IN_PERSON = "in_person", _("In person")
        OTHER = "other", _("Other")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ANSWERED = "answered", _("Answered")

    shipment = models.ForeignKey(
        Shipment, on_delete=models.PROTECT, related_name="inquiries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    question = models.TextField(max_length=2000)
    answer = models.TextField(max_length=4000, blank=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.OPEN
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "inquiries"
        permissions = [("answer_inquiry", "Can answer a customer inquiry")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["open", "answered"]),
                name="inquiry_status_valid",
            ),
            # An answered inquiry always says what, by whom and when.
            models.CheckConstraint(
                condition=models.Q(status="open")
                | models.Q(answered_by__isnull=False, answered_at__isnull=False),
                name="inquiry_answered_has_answer",
            ),
        ]
        indexes = [
            models.Index(fields=["shipment", "created_at"], name="inquiry_shipment"),
            # The open-inquiries list: a small part of the table, oldest first.
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(status="open"),
                name="inquiry_open",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.shipment} {self.get_channel_display()} {self.created_at:%Y-%m-%d}"
        )


class Feedback(models.Model):
    """The customer's rating after delivery: one per shipment, kept for reports.
    Given through the public page, so it records no person and no address."""

    shipment = models.OneToOneField(
        Shipment, on_delete=models.PROTECT, related_name="feedback"
    )
    rating = models.PositiveSmallIntegerField()
    comment = models.TextField(max_length=1000, blank=True)
    # The page's language, so reports can read comments in context.
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "feedback"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rating__gte=1, rating__lte=5),
                name="feedback_rating_1_to_5",
            ),
        ]
        indexes = [models.Index(fields=["created_at"], name="feedback_created")]

    def __str__(self) -> str:
        return f"{self.shipment}: {self.rating}/5"


class AccessLog(models.Model):
    """Who saw a shipment's personal data, when, and on which page. One row per
    shipment shown, written in one INSERT per page view; purged with the
    shipments by the retention rules, never edited."""

    class Page(models.TextChoices):
        SHIPMENT = "shipment", _("Shipment page")
        SEARCH = "search", _("Search results")
        EXCEPTION = "exception", _("Exception page")

    at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept when the account is deleted later.
    username = models.CharField(max_length=150)
    page = models.CharField(max_length=12, choices=Page.choices)
    shipment = models.ForeignKey(
        Shipment, on_delete=models.CASCADE, related_name="access_log"
    )
    path = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        permissions = [("view_access_log", "Can read who viewed a shipment")]
        indexes = [
            models.Index(fields=["shipment", "-at"], name="access_shipment"),
            models.Index(fields=["at"], name="access_at"),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.page} {self.at:%Y-%m-%d %H:%M}"


class CarrierWebhook(models.Model):
    """One push a carrier sent us, stored raw before anything is done with it,
    and what became of each of its events. Never edited after processing; a
    replay of the same provider event id finds this row and changes nothing."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSING = "processing", _("Processing")
        PROCESSED = "processed", _("Processed")
        FAILED = "failed", _("Failed")

    carrier = models.ForeignKey(
        Carrier, on_delete=models.PROTECT, related_name="webhooks"
    )
    format = models.CharField(max_length=20, choices=PushFormat.choices)
    provider_event_id = models.CharField(max_length=200)
    # The bytes as sent: the signature was checked on them, and they can be
    # checked again or reprocessed after a mapping fix.
    body = models.BinaryField()
    # A few request headers for support (never the credential itself).
    headers = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.RECEIVED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # One entry per carrier event: created / duplicate / refused / ignored.
    outcome = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # A replayed push (same provider event id) is stored once.
            models.UniqueConstraint(
                fields=["carrier", "provider_event_id"],
                name="carrier_webhook_event_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["received", "processing", "processed", "failed"]
                ),
                name="carrier_webhook_status_valid",
            ),
        ]
        indexes = [
            # The sweeper: pushes whose task was lost (broker down, worker died).
            models.Index(
                fields=["received_at", "id"],
                condition=models.Q(status__in=["received", "processing"]),
                name="carrier_webhook_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.carrier} {self.provider_event_id}"


class CarrierAccount(models.Model):
    """The company's API account with an external carrier, used to poll its
    tracking API (`shipments.carriers`). Credentials are a JSON object of
    the karrio connection settings, stored encrypted
    (`shipments.carriers.credentials`) or read from the environment variable
    named in `credentials_env`; they are never shown back."""

    class State(models.TextChoices):
        UNCHECKED = "unchecked", _("Not used yet")
        OK = "ok", _("Working")
        FAILING = "failing", _("Failing")

    carrier = models.OneToOneField(
        Carrier, on_delete=models.CASCADE, related_name="account"
    )
    provider = models.CharField(max_length=20, choices=TrackingProvider.choices)
    credentials = models.TextField(
        blank=True, help_text=_("Encrypted; write-only in the admin.")
    )
    credentials_env = models.CharField(
        _("credentials from environment variable"),
        max_length=100,
        blank=True,
        help_text=_(
            "Name of an environment variable holding the credentials as JSON; "
            "used instead of the stored ones when set."
        ),
    )
    test_mode = models.BooleanField(
        default=True, help_text=_("Use the carrier's test (sandbox) servers.")
    )
    is_active = models.BooleanField(_("on"), default=True)
    requests_per_minute = models.PositiveIntegerField(
        default=120,
        validators=[MinValueValidator(1)],
        help_text=_("The most tracking requests a minute the carrier allows us."),
    )
    state = models.CharField(
        max_length=12, choices=State.choices, default=State.UNCHECKED
    )
    state_message = models.TextField(blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    # When staff were told it fails (once per failing spell, not every poll).
    alerted_at = models.DateTimeField(null=True, blank=True)
    # No request before this (the carrier answered 429 or 5xx).
    backoff_until = models.DateTimeField(null=True, blank=True)
    # Requests in a row the carrier refused with 429 or 5xx: the back-off
    # doubles with each (shipments.carriers.cadence.account_backoff).
    failures = models.PositiveIntegerField(default=0)
    last_poll_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["carrier__name"]

    def __str__(self) -> str:
        return f"{self.carrier} ({self.get_provider_display()})"


class CarrierSync(models.Model):
    """Where one shipment's carrier tracking sync stands."""

    class Result(models.TextChoices):
        OK = "ok", _("Synced")
        UNKNOWN_NUMBER = "unknown_number", _("Carrier does not know the number")
        ERROR = "error", _("Carrier error")
        ACCOUNT_FAILING = "account_failing", _("Carrier account failing")
        RATE_LIMITED = "rate_limited", _("Carrier asked us to slow down")

    shipment = models.OneToOneField(
        Shipment, on_delete=models.CASCADE, related_name="carrier_sync"
    )
    account = models.ForeignKey(
        CarrierAccount, on_delete=models.CASCADE, related_name="syncs"
    )
    next_due_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)  # last success
    last_result = models.CharField(max_length=20, choices=Result.choices, blank=True)
    last_message = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0)  # in a row
    # Set while a batch task holds it (queued, not yet recorded): counts
    # against the account's requests a minute.
    queued_at = models.DateTimeField(null=True, blank=True)
    unknown_since = models.DateTimeField(null=True, blank=True)
    # The latest carrier event's time: the cadence slows after days without.
    last_movement_at = models.DateTimeField(null=True, blank=True)
    # Set when the carrier contradicts the record (delivered after returned).
    flag = models.TextField(blank=True)
    is_done = models.BooleanField(default=False)  # delivered or given up

    class Meta:
        indexes = [
            models.Index(
                fields=["next_due_at"],
                condition=models.Q(is_done=False),
                name="carrier_sync_due",
            ),
            # The poller's count of an account's batches in flight.
            models.Index(
                fields=["account", "queued_at"],
                condition=models.Q(queued_at__isnull=False),
                name="carrier_sync_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"Carrier sync of {self.shipment_id}"
