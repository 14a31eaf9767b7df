from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from notifications.models import Audience, Channel, Kind, Notification, Status
from shipments import services
from shipments.dispatch import shipment_check, shipment_dispatch
from shipments.models import Carrier, Location, Shipment, TrackingEvent
from shipments.status import EventKind, ShipmentStatus
from tracksop import roles
from tracksop.models import StaffProfile

ModelT = TypeVar("ModelT")


class ModelFactory(factory.django.DjangoModelFactory[ModelT]):
    """Base of the factories here: `ShipmentFactory(...)` is typed as a `Shipment`.

    factory-boy's metaclass builds the instance, so the call returns the model, not
    the factory; mypy ignores a metaclass `__call__` when the class defines an untyped
    `__new__` (factory-boy's does), so the call is typed through `__new__` instead.
    """

    class Meta:
        abstract = True

    if TYPE_CHECKING:
        # mypy wants `__new__` to return the class; it still honours this type.
        def __new__(cls, **kwargs: Any) -> ModelT: ...  # type: ignore[misc]


def _join_role(
    user: User, create: bool, extracted: str | None, **kwargs: object
) -> None:
    if create and extracted:
        user.groups.add(Group.objects.get(name=extracted))
    if create:
        user.save()


class UserFactory(ModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", "pass-word-123")

    role = factory.PostGeneration(_join_role)


class StaffProfileFactory(ModelFactory[StaffProfile]):
    class Meta:
        model = StaffProfile

    user = factory.SubFactory(UserFactory)
    timezone = "Europe/Berlin"


class CarrierFactory(ModelFactory[Carrier]):
    class Meta:
        model = Carrier
        django_get_or_create = ("code",)

    code = "ups"
    name = "UPS"
    tracking_family = "ups"
    tracking_url_template = "https://www.ups.com/track?tracknum={number}"


class OwnFleetFactory(CarrierFactory):
    code = "fleet"
    name = "Own fleet"
    tracking_family = "s10"
    is_own_fleet = True
    tracking_url_template = ""


class LocationFactory(ModelFactory[Location]):
    class Meta:
        model = Location
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"hub-{n}")
    name = factory.Sequence(lambda n: f"Hub {n}")
    city = "Chicago"
    country = "US"
    timezone = "America/Chicago"


class ShipmentFactory(ModelFactory[Shipment]):
    """A shipment as recorded (status created) with its CREATED event."""

    class Meta:
        model = Shipment

    shipment_id = factory.Sequence(lambda n: f"SH-T{n:06d}")
    order_number = factory.Sequence(lambda n: f"ORD-{n:05d}")
    sender_name = "Acme Warehouse"
    sender_email = "dispatch@acme.example"
    sender_address = "1 Dock Road, Newark"
    recipient_name = factory.Faker("name")
    recipient_email = factory.Sequence(lambda n: f"customer{n}@example.net")
    recipient_phone = factory.Sequence(lambda n: f"+1202555{n % 10000:04d}")
    recipient_address = "742 Evergreen Terrace"
    recipient_postcode = "62704"
    recipient_city = "Springfield"
    recipient_country = "US"
    weight_kg = Decimal("2.500")
    length_cm = Decimal("30.0")
    width_cm = Decimal("20.0")
    height_cm = Decimal("10.0")
    contents = "Books"
    pieces = 1

    @classmethod
    def _create(
        cls, model_class: type[Shipment], *args: object, **kwargs: object
    ) -> Shipment:
        code = cast(str, kwargs.pop("shipment_id"))
        return services.shipment_create(user=None, details=kwargs, shipment_id=code)


def ready_shipment(**kwargs: object) -> Shipment:
    shipment = ShipmentFactory(**kwargs)
    return shipment_check(
        shipment=shipment,
        user=None,
        quality_ok=True,
        quantity_ok=True,
    )


def dispatched_shipment(
    *, carrier: Carrier | None = None, tracking_number: str = "", **kwargs: object
) -> Shipment:
    shipment = ready_shipment(**kwargs)
    return shipment_dispatch(
        shipment=shipment,
        user=None,
        carrier=carrier or OwnFleetFactory(),
        tracking_number=tracking_number,
        estimated_delivery=timezone.localdate() + timedelta(days=3),
    )


class TrackingEventFactory(ModelFactory[TrackingEvent]):
    """Raw event rows for selector tests; workflows go through the services."""

    class Meta:
        model = TrackingEvent

    shipment = factory.SubFactory(ShipmentFactory)
    kind = EventKind.NOTE
    occurred_at = factory.LazyFunction(timezone.now)
    source = "form"
    status_after = ShipmentStatus.CREATED


__all__ = [
    "CarrierFactory",
    "LocationFactory",
    "OwnFleetFactory",
    "ShipmentFactory",
    "StaffProfileFactory",
    "TrackingEventFactory",
    "UserFactory",
    "dispatched_shipment",
    "ready_shipment",
    "roles",
]


class NotificationFactory(ModelFactory[Notification]):
    """A stored message in any state, for pages that list them. Messages caused
    by events come from the services; this is for history and failed lists."""

    class Meta:
        model = Notification

    shipment = factory.LazyFunction(lambda: dispatched_shipment())
    kind = Kind.DISPATCHED
    channel = Channel.EMAIL
    audience = Audience.RECIPIENT
    to = factory.LazyAttribute(lambda n: n.shipment.recipient_email)
    subject = factory.LazyAttribute(
        lambda n: f"Your order {n.shipment.order_number} is on its way"
    )
    body_text = "Your order is on its way."
    status = Status.SENT
    attempts = 1
    sent_at = factory.LazyFunction(timezone.now)
    idempotency_key = factory.Sequence(lambda n: f"factory:{n}")
    next_attempt_at = factory.LazyAttribute(
        lambda n: (
            timezone.now() if n.status in (Status.PENDING, Status.SENDING) else None
        )
    )
