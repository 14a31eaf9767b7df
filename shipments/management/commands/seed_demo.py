"""Demo users and a year of realistic shipments with full checkpoint histories.

Rows are built in memory and written with bulk inserts (100,000 shipments with
their events in well under two minutes). Each history is folded through the
real status machine, so stored status always equals the replay of the log.

A development tool kept in one file (a little over 500 lines): the plan of a
shipment's life and its bulk writer read best side by side.
"""

from __future__ import annotations

import random
import secrets
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from shipments import tracking_numbers as tn
from shipments.models import (
    Carrier,
    Location,
    PushFormat,
    Shipment,
    Source,
    TrackingEvent,
    default_language,
)
from shipments.status import (
    EventKind,
    State,
    TransitionRefused,
    initial_state,
    next_state,
)
from tracksop import roles

K = EventKind
# Printed by `make run`; demo accounts only, never created in production.
DEMO_PASSWORD = "tracksop-demo"  # noqa: S105
DEMO_USERS = [
    ("admin", "Ada", "Admin", None),
    ("logistics", "Lena", "Logistics", roles.LOGISTICS),
    ("cs", "Carlos", "Service", roles.CUSTOMER_SERVICE),
    ("supervisor", "Sam", "Supervisor", roles.SUPERVISOR),
    ("manager", "Maya", "Manager", roles.MANAGER),
]
CARRIERS = [
    ("fleet", "TrackSOP Fleet", "s10", True, ""),
    ("ups", "UPS", "ups", False, "https://www.ups.com/track?tracknum={number}"),
    (
        "fedex",
        "FedEx",
        "fedex",
        False,
        "https://www.fedex.com/fedextrack/?trknbr={number}",
    ),
    (
        "usps",
        "USPS",
        "usps",
        False,
        "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}",
    ),
    (
        "dhl",
        "DHL Express",
        "dhl_express",
        False,
        "https://www.dhl.com/track?tracking-id={number}",
    ),
]
HUBS = [
    ("nwk", "Newark gateway", "hub", "Newark", "US", "America/New_York"),
    ("chi", "Chicago hub", "hub", "Chicago", "US", "America/Chicago"),
    ("dfw", "Dallas hub", "hub", "Dallas", "US", "America/Chicago"),
    ("den", "Denver depot", "depot", "Denver", "US", "America/Denver"),
    ("lax", "Los Angeles hub", "hub", "Los Angeles", "US", "America/Los_Angeles"),
    ("sea", "Seattle depot", "depot", "Seattle", "US", "America/Los_Angeles"),
    ("atl", "Atlanta depot", "depot", "Atlanta", "US", "America/New_York"),
    ("mia-pp", "Miami pickup point", "pickup_point", "Miami", "US", "America/New_York"),
]
FIRST = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Mateo",
    "Sofia",
    "Lucas",
    "Mia",
    "Ethan",
    "Amara",
    "Kenji",
    "Priya",
    "Omar",
    "Zoe",
    "Ivan",
    "Lena",
    "Diego",
    "Nora",
    "Yusuf",
    "Hana",
    "Felix",
    "Aisha",
    "Tomas",
]
LAST = [
    "Smith",
    "Garcia",
    "Johnson",
    "Nguyen",
    "Brown",
    "Patel",
    "Kim",
    "Lopez",
    "Muller",
    "Rossi",
    "Okafor",
    "Silva",
    "Cohen",
    "Tanaka",
    "Novak",
    "Haddad",
    "Murphy",
    "Jensen",
    "Costa",
    "Wright",
]
CITIES = [
    ("New York", "10001"),
    ("Chicago", "60601"),
    ("Houston", "77002"),
    ("Phoenix", "85004"),
    ("Denver", "80202"),
    ("Seattle", "98101"),
    ("Miami", "33101"),
    ("Boston", "02108"),
    ("Austin", "78701"),
    ("Portland", "97201"),
]
CONTENTS = [
    "Books",
    "Shoes",
    "Laptop accessories",
    "Kitchenware",
    "Toys",
    "Clothing",
    "Spare parts",
    "Cosmetics",
    "Garden tools",
    "Documents",
]
# Shipments created in the last week, beside a year spread evenly (which
# alone leaves about 1% of them still on their way).
RECENT_SHARE = 0.06
EXCEPTION_CAUSES = [
    "Address issue: recipient unknown",
    "Weather delay",
    "Damaged packaging",
    "Customs hold",
    "Failed delivery attempt: no one home",
]


class Command(BaseCommand):
    help = "Create demo users, carriers, hubs and a year of shipments with histories."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--shipments", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--force", action="store_true", help="Add shipments even if some exist."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        rng = random.Random(options["seed"])
        users = self._users()
        carriers = self._carriers()
        hubs = self._hubs()
        if Shipment.objects.exists() and not options["force"]:
            self.stdout.write(
                "Shipments exist already; demo users, carriers and hubs ensured."
            )
            return
        count = options["shipments"]
        next_id = (
            Shipment.objects.order_by("-id").values_list("id", flat=True).first() or 0
        ) + 1
        next_event_id = (
            TrackingEvent.objects.order_by("-id").values_list("id", flat=True).first()
            or 0
        ) + 1
        now = timezone.now()
        staff = [users["logistics"], users["supervisor"]]
        written_s = written_e = 0
        batch = 10000
        for start in range(0, count, batch):
            shipments: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for n in range(next_id + start, next_id + min(start + batch, count)):
                shipment, history = self._plan(rng, n, now, carriers, hubs, staff)
                shipments.append(shipment)
                for event in history:
                    event["id"] = next_event_id
                    next_event_id += 1
                    events.append(event)
            with transaction.atomic():
                rows_copy(Shipment, shipments)
                rows_copy(TrackingEvent, events)
            written_s += len(shipments)
            written_e += len(events)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(
                no_style(), [Shipment, TrackingEvent]
            ):
                cursor.execute(sql)
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {written_s} shipments with {written_e} events "
                f"in {time.monotonic() - started:.1f} s."
            )
        )

    def _users(self) -> dict[str, User]:
        users = {}
        for username, first, last, role in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@tracksop.local",
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.is_superuser = role is None
                user.is_staff = role is None or role in roles.ADMIN_ROLES
                user.save()
                if role:
                    user.groups.add(Group.objects.get(name=role))
            users[username] = user
        return users

    def _carriers(self) -> list[Carrier]:
        return [
            Carrier.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "tracking_family": family,
                    "is_own_fleet": own,
                    "tracking_url_template": url,
                    # UPS pushes in its Track Alert format; the rest in ours.
                    "push_format": (
                        PushFormat.UPS_TRACK_ALERT
                        if code == "ups"
                        else PushFormat.GENERIC
                    ),
                },
            )[0]
            for code, name, family, own, url in CARRIERS
        ]

    def _hubs(self) -> list[Location]:
        return [
            Location.objects.get_or_create(
                code=code,
                defaults={
                    "name": name,
                    "kind": kind,
                    "city": city,
                    "country": country,
                    "timezone": tz,
                },
            )[0]
            for code, name, kind, city, country, tz in HUBS
        ]

    def _plan(
        self,
        rng: random.Random,
        n: int,
        now: datetime,
        carriers: list[Carrier],
        hubs: list[Location],
        staff: list[User],
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # A year of history, the last week busier: packages on their way now.
        recent = rng.random() < RECENT_SHARE
        days = 7 if recent else 365
        created = now - timedelta(seconds=rng.randint(600, days * 86400))
        first, last = rng.choice(FIRST), rng.choice(LAST)
        city, postcode = rng.choice(CITIES)
        carrier = rng.choice(carriers)
        area = rng.choice(["202", "312", "415", "617", "713"])
        s: dict[str, Any] = {
            "id": n,
            "shipment_id": f"SH-D{n:07d}",
            "order_number": f"ORD-{100000 + n}",
            # Every seventh recipient reads Spanish; no draw, so the rest of
            # the demo data stays as it was.
            "language": "es" if n % 7 == 0 else default_language(),
            "sender_name": "TrackSOP Demo Warehouse",
            "sender_email": "warehouse@tracksop.local",
            "sender_phone": "",
            "sender_address": "1 Dock Road, Newark, NJ",
            "notify_sender": False,
            "recipient_name": f"{first} {last}",
            "recipient_email": f"{first}.{last}.{n}@example.com".lower(),
            "recipient_phone": f"+1{area}555{n % 10000:04d}",
            "recipient_address": f"{rng.randint(1, 999)} {rng.choice(LAST)} Street",
            "recipient_postcode": postcode,
            "recipient_city": city,
            "recipient_country": "US",
            "weight_kg": Decimal(rng.randint(100, 25000)) / 1000,
            "length_cm": Decimal(rng.randint(10, 80)),
            "width_cm": Decimal(rng.randint(10, 60)),
            "height_cm": Decimal(rng.randint(5, 50)),
            "contents": rng.choice(CONTENTS),
            "pieces": rng.choice([1, 1, 1, 2, 3]),
            "checked_by_id": None,
            "checked_at": None,
            "quality_ok": None,
            "quantity_ok": None,
            "check_notes": "",
            "carrier_id": None,
            "tracking_number": None,
            "estimated_delivery": None,
            "dispatch_eta": None,
            "dispatched_at": None,
            "delivered_at": None,
            "current_location_id": None,
            "origin_id": None,
            "public_token": secrets.token_urlsafe(16),
            "created_by_id": None,
            "created_at": created,
            "updated_at": now,
            "last_event_at": created,
        }
        events: list[dict[str, Any]] = []
        state = initial_state()
        clock = created
        worker = rng.choice(staff)
        s["created_by_id"] = worker.pk

        def add(
            kind: str,
            at: datetime,
            location: Location | None = None,
            notes: str = "",
            user: User | None = None,
            source: str = Source.SYSTEM,
        ) -> bool:
            nonlocal state
            if at > now:
                return False
            try:
                state = next_state(state, kind=kind, occurred_at=at)
            except TransitionRefused:
                return False
            events.append(
                {
                    "shipment_id": n,
                    "kind": kind,
                    "occurred_at": at,
                    "recorded_at": at,
                    "location_id": location.pk if location else None,
                    "recorded_by_id": user.pk if user else None,
                    "integration": "" if user else carrier.name,
                    "source": source,
                    "notes": notes,
                    "external_id": "",
                    "voids_id": None,
                    "status_after": state.status,
                    "data": {},
                }
            )
            if location is not None:
                s["current_location_id"] = location.pk
                s["origin_id"] = s["origin_id"] or location.pk
            s["last_event_at"] = at
            return True

        form = Source.FORM
        add(K.CREATED, created, user=worker, source=form)
        roll = rng.random()
        clock += timedelta(minutes=rng.randint(20, 300))
        if roll < 0.01:
            add(K.CANCELLED, clock, user=worker, source=form, notes="Order cancelled")
            return self._finish(s, state, events)
        if not add(K.CHECK_PASSED, clock, user=worker, source=form):
            return self._finish(s, state, events)
        s.update(
            checked_by_id=worker.pk, checked_at=clock, quality_ok=True, quantity_ok=True
        )
        clock += timedelta(minutes=rng.randint(30, 600))
        if clock > now:
            return self._finish(s, state, events)
        s["carrier_id"] = carrier.pk
        s["tracking_number"] = self._tracking_number(rng, carrier)
        s["dispatched_at"] = clock
        s["estimated_delivery"] = (clock + timedelta(days=rng.randint(2, 5))).date()
        s["dispatch_eta"] = s["estimated_delivery"]
        add(K.DISPATCHED, clock, user=worker, source=form)
        clock += timedelta(hours=rng.uniform(1, 8))
        add(K.PICKED_UP, clock, source=Source.WEBHOOK)
        route = rng.sample(hubs[:7], rng.randint(1, 3))
        late = roll > 0.85
        for hub in route:
            clock += timedelta(hours=rng.uniform(4, 30 if late else 14))
            add(K.ARRIVED_HUB, clock, hub, source=Source.BULK_SCAN, user=worker)
            if 0.05 < roll < 0.09 and hub is route[0]:
                clock += timedelta(hours=rng.uniform(1, 6))
                cause = rng.choice(EXCEPTION_CAUSES)
                add(
                    K.EXCEPTION_REPORTED,
                    clock,
                    hub,
                    notes=cause,
                    user=worker,
                    source=form,
                )
                clock += timedelta(hours=rng.uniform(6, 48))
                add(
                    K.EXCEPTION_RESOLVED,
                    clock,
                    hub,
                    notes="Resolved",
                    user=worker,
                    source=form,
                )
            clock += timedelta(hours=rng.uniform(1, 5))
            add(K.DEPARTED_HUB, clock, hub, source=Source.BULK_SCAN, user=worker)
        clock += timedelta(hours=rng.uniform(6, 20))
        if roll > 0.99:
            add(K.RETURNED, clock, route[-1], notes="Refused by recipient")
            return self._finish(s, state, events)
        add(K.OUT_FOR_DELIVERY, clock, route[-1])
        clock += timedelta(hours=rng.uniform(1, 9))
        if 0.09 < roll < 0.12:
            add(K.DELIVERY_ATTEMPTED, clock, notes="No one home; card left")
            clock += timedelta(hours=rng.uniform(18, 30))
            add(K.OUT_FOR_DELIVERY, clock, route[-1])
            clock += timedelta(hours=rng.uniform(1, 9))
        add(K.DELIVERED, clock, notes="Signed by recipient")
        return self._finish(s, state, events)

    @staticmethod
    def _finish(
        s: dict[str, Any], state: State, events: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        s["status"] = state.status
        s["status_changed_at"] = state.since or s["created_at"]
        s["resume_status"] = state.resume
        if state.status == "delivered":
            s["delivered_at"] = events[-1]["occurred_at"]
        s["version"] = len(events)
        return s, events

    _used: set[str] = set()

    def _tracking_number(self, rng: random.Random, carrier: Carrier) -> str:
        while True:
            number = _random_number(rng, carrier.family)
            if number not in self._used:
                self._used.add(number)
                return number


def _random_number(rng: random.Random, family: tn.Family) -> str:
    """A random number of the family's main format with a correct check digit."""

    def digits(k: int) -> str:
        return "".join(rng.choices("0123456789", k=k))

    if family == tn.Family.S10:
        return tn.s10_generate(prefix="TS", serial=rng.randrange(10**8), country="US")
    body = {
        tn.Family.UPS: "1Z"
        + "".join(rng.choices("0123456789ABCDEFGHJKLMNPRSTUVWXY", k=6))
        + "03"
        + digits(7),
        tn.Family.FEDEX: digits(11),
        tn.Family.USPS: "9400" + digits(17),
        tn.Family.DHL_EXPRESS: digits(9),
    }[family]
    for check in "0123456789":
        try:
            return tn.validate(body + check, family).number
        except tn.InvalidTrackingNumber:
            continue
    raise AssertionError(f"no check digit completes {body}")


def rows_copy(model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Bulk-insert plain rows: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    columns = list(rows[0])
    table = model._meta.db_table
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(
                        [Jsonb(v) if isinstance(v, dict) else v for v in row.values()]
                    )
            return
        fields = [model._meta.get_field(c) for c in columns]
        values = [
            [
                f.get_db_prep_save(row[c], connection)
                for f, c in zip(fields, columns, strict=True)
            ]
            for row in rows
        ]
        marks = ", ".join(["%s"] * len(columns))
        # Table and column names come from model metadata, never from input.
        sql = f"INSERT INTO {table} ({quoted}) VALUES ({marks})"  # noqa: S608
        cursor.executemany(sql, values)
