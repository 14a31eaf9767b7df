"""Reports: runs of the weekly, monthly and custom reports, their schedules,
the monthly figures kept after the shipments behind them are purged, and the
audit of every retention purge with its archive files.

A finished `ReportRun` is immutable: its metrics are stored with it (so the page
and the PDF show the same figures forever) and generating again makes a new run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from shipments.models import Carrier, Location

if TYPE_CHECKING:
    from django.core.files.storage import Storage


class ReportKind(models.TextChoices):
    WEEKLY = "weekly", _("Weekly (ISO week, Monday to Sunday)")
    MONTHLY = "monthly", _("Monthly")
    CUSTOM = "custom", _("Custom period")


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)


def report_storage() -> Storage:
    """The storage report files and archives go to (settings.STORAGES)."""
    from django.core.files.storage import storages

    return storages["reports"]


class Holiday(models.Model):
    """A company day off on top of the country's public holidays
    (TRACKSOP_HOLIDAY_COUNTRY): not a business day in transit times."""

    date = models.DateField(unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["date"]

    def __str__(self) -> str:
        return f"{self.date:%Y-%m-%d} {self.name}"


class ReportSchedule(models.Model):
    """The weekly (Monday 06:00) or monthly (the 1st, 06:00) run of the
    previous period, company time, and who gets its PDF by email."""

    kind = models.CharField(
        max_length=10,
        choices=[
            (ReportKind.WEEKLY, ReportKind.WEEKLY.label),
            (ReportKind.MONTHLY, ReportKind.MONTHLY.label),
        ],
        unique=True,
    )
    is_active = models.BooleanField(_("on"), default=True)
    recipient_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        verbose_name=_("roles that get it"),
    )
    recipient_emails = models.TextField(
        _("other addresses"),
        max_length=2000,
        blank=True,
        help_text=_("One email address per line."),
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["kind"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} schedule"


class ReportRun(models.Model):
    kind = models.CharField(max_length=10, choices=ReportKind.choices)
    # Company-time calendar days, both inclusive.
    period_start = models.DateField()
    period_end = models.DateField()
    carrier = models.ForeignKey(
        Carrier, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    hub = models.ForeignKey(
        Location,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("origin hub"),
    )
    # Who asked, or which schedule made it (one of the two).
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    schedule = models.ForeignKey(
        ReportSchedule,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
    )
    # kind:start:end:carrier:hub — identical requests share it, so the
    # constraint below lets only one of them be queued or running at a time.
    request_key = models.CharField(max_length=200)

    status = models.CharField(
        max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED
    )
    progress = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)]
    )
    stage = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    # The figures the page and the files were made from (JSON, see metrics).
    data = models.JSONField(null=True, blank=True, editable=False)
    pdf = models.FileField(storage=report_storage, blank=True, max_length=300)
    pdf_size = models.PositiveBigIntegerField(null=True, blank=True)
    pdf_sha256 = models.CharField(max_length=64, blank=True)
    csv = models.FileField(storage=report_storage, blank=True, max_length=300)
    csv_size = models.PositiveBigIntegerField(null=True, blank=True)
    csv_sha256 = models.CharField(max_length=64, blank=True)
    xlsx = models.FileField(storage=report_storage, blank=True, max_length=300)
    xlsx_size = models.PositiveBigIntegerField(null=True, blank=True)
    xlsx_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("request_report", "Can ask for a report and read reports")]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_end__gte=models.F("period_start")),
                name="report_period_ordered",
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="report_status_valid"
            ),
            models.UniqueConstraint(
                fields=["request_key"],
                condition=Q(status__in=ACTIVE),
                name="report_one_active_per_request",
            ),
            # Two beats or a restart: one run per schedule and period (a failed
            # one may be tried again by a new run).
            models.UniqueConstraint(
                fields=["schedule", "period_start"],
                condition=Q(schedule__isnull=False) & ~Q(status=RunStatus.FAILED),
                name="report_one_run_per_schedule_period",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="report_status"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.period_start} to {self.period_end}"

    def get_absolute_url(self) -> str:
        return reverse("report-detail", args=[self.pk])

    @property
    def pdf_filename(self) -> str:
        """The name a downloaded or emailed PDF gets."""
        return f"tracksop-{self.kind}-report-{self.period_start:%Y-%m-%d}.pdf"

    @property
    def is_finished(self) -> bool:
        return self.status in (RunStatus.DONE, RunStatus.FAILED)


class PeriodAggregate(models.Model):
    """One closed week's or month's headline figures for one scope: what the
    trends read instead of the period's rows, kept after the shipments are
    archived and purged so long trends still draw.

    `scope` is "all", "carrier:<code>", "hub:<code>" or both joined with
    "+" (`reports.aggregates.scope_of`)."""

    kind = models.CharField(
        max_length=10,
        choices=[(ReportKind.WEEKLY, _("Week")), (ReportKind.MONTHLY, _("Month"))],
        default=ReportKind.MONTHLY,
    )
    start = models.DateField(help_text=_("The week's Monday or the month's first day."))
    scope = models.CharField(max_length=80, default="all")
    data = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "start", "scope"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "start", "scope"], name="aggregate_one_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.start} {self.scope}"


class RetentionPurge(models.Model):
    """The audit row of one archive-then-purge: who ran it, the cut-off, the
    archives written and what was removed. Never deleted."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    run_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # "schedule", "command", or the operator's description.
    run_by_label = models.CharField(max_length=150)
    cutoff = models.DateTimeField()
    dry_run = models.BooleanField(default=False)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.RUNNING
    )
    # Rows removed per table, e.g. {"shipments.Shipment": 1200, ...}.
    removed = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"Purge before {self.cutoff:%Y-%m-%d} ({self.status})"


class Archive(models.Model):
    """One compressed JSON Lines file of the shipments whose last event fell in
    one month, with everything that belongs to them; verified before purge."""

    month = models.DateField(help_text=_("The first day of the month."))
    purge = models.ForeignKey(
        RetentionPurge, on_delete=models.PROTECT, related_name="archives"
    )
    file = models.FileField(storage=report_storage, max_length=300)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Rows per table in the file, as counted when it was read back.
    counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["month", "id"]

    def __str__(self) -> str:
        return f"Archive {self.month:%Y-%m} ({self.file.name})"
