"""The public tracking page, the lookup and feedback: what a customer without
an account sees, and what nobody else can get out of them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django import (
    DjangoAssertNumQueries,
    DjangoCaptureOnCommitCallbacks,
    Settings,
)

from exceptions_mgmt.reporting import exception_report
from shipments.checkpoints import checkpoint_record, event_void
from shipments.feedback import FeedbackRefused, feedback_record
from shipments.models import Feedback, Location, Shipment
from shipments.public import tracking_page_forget
from shipments.status import EventKind
from tests.factories import (
    CarrierFactory,
    LocationFactory,
    UserFactory,
    dispatched_shipment,
    roles,
)
from tests.helpers import TestResponse, next_hour_start, race
from tracksop.http import rate_limits_local_reset

# Distinctive strings: none may appear on any public page.
PII = {
    "recipient_name": "Quixotia Zamberlain",
    "recipient_email": "quixotia.private@example.net",
    "recipient_phone": "+12025550187",
    "recipient_address": "77 Hiddenvale Crescent",
    "recipient_city": "Secretville",
    "sender_name": "Obscurio Sendington",
    "sender_email": "obscurio@sender.example",
    "sender_phone": "+12025550143",
    "sender_address": "12 Confidential Quay",
}
NEEDLES = [
    *PII.values(),
    "2025550187",
    "2025550143",
    "Staffina",
    "Wardwell",
    "internal note xyzzy",
    "customer refused, neighbour",
]


DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Nothing listens here: the cache is down.
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    # Pages and rate-limit counters of one test must not leak into the next.
    cache.clear()
    rate_limits_local_reset()
    # The limits count in fixed windows (per minute, per hour): each test
    # starts just after an hour begins, the clock running, so no window ends
    # halfway through its requests.
    with time_machine.travel(next_hour_start(), tick=True):
        yield


@pytest.fixture
def chicago() -> Location:
    return LocationFactory(
        code="chi", name="Chicago North Hub", city="Chicago", timezone="America/Chicago"
    )


@pytest.fixture
def shipment(db: None, chicago: Location) -> Shipment:
    staff = UserFactory(
        username="staffina", first_name="Staffina", last_name="Wardwell"
    )
    s = dispatched_shipment(
        carrier=CarrierFactory(),
        tracking_number="1Z999AA10123456784",
        recipient_postcode="SW1A 1AA",
        order_number="ORD-4711",
        **PII,
    )
    checkpoint_record(
        shipment=s,
        kind=EventKind.ARRIVED_HUB,
        user=staff,
        location=chicago,
        occurred_at=timezone.now() - timedelta(hours=2),
        notes="internal note xyzzy",
    )
    checkpoint_record(
        shipment=s, kind=EventKind.NOTE, user=staff, notes="internal note xyzzy"
    )
    s.refresh_from_db()
    return s


def page_url(s: Shipment) -> str:
    return reverse("public-tracking", args=[s.public_token])


def html(response: TestResponse) -> str:
    return response.content.decode()


class TestTrackingPage:
    def test_it_shows_status_eta_carrier_number_and_the_timeline(
        self, client: Client, shipment: Shipment
    ) -> None:
        response = client.get(page_url(shipment))
        body = html(response)
        assert response.status_code == 200
        assert "On its way" in body
        assert "Estimated delivery" in body
        assert "UPS" in body
        assert "1Z999AA10123456784" in body
        assert "Arrived at a sorting centre" in body
        assert "Chicago, US" in body
        # The scan's time in the hub's zone, not UTC.
        assert re.search(r"\b(CST|CDT)\b", body)
        assert 'aria-current="step"' in body

    def test_it_shows_no_personal_data_staff_or_internal_notes(
        self, client: Client, shipment: Shipment, chicago: Location
    ) -> None:
        exception_report(
            shipment=shipment,
            user=UserFactory(first_name="Staffina", last_name="Wardwell"),
            cause="other",
            cause_other="customer refused, neighbour",
            description="internal note xyzzy",
            expected_resolution=timezone.now() + timedelta(days=1),
        )
        pages = [
            client.get(page_url(shipment)),
            client.get(reverse("public-feedback", args=[shipment.public_token])),
            client.get(reverse("public-lookup")),
        ]
        for response in pages:
            body = html(response)
            for needle in NEEDLES:
                assert needle not in body, needle

    def test_an_open_exception_shows_its_cause_and_expected_resolution(
        self, client: Client, shipment: Shipment
    ) -> None:
        by = timezone.now() + timedelta(days=2)
        exception_report(
            shipment=shipment,
            user=None,
            cause="weather",
            expected_resolution=by,
        )
        body = html(client.get(page_url(shipment)))
        assert "Delayed by a problem" in body
        assert "Weather" in body
        assert "We expect to solve it by" in body

    def test_internal_and_voided_events_are_not_shown(
        self, client: Client, shipment: Shipment, supervisor: User
    ) -> None:
        wrong = checkpoint_record(
            shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None
        )
        event_void(event=wrong, user=supervisor, reason="Wrong package")
        body = html(client.get(page_url(shipment)))
        assert "Out for delivery" not in body.split("Journey")[1]
        assert "Wrong package" not in body
        assert "check passed" not in body.lower()

    def test_unknown_and_malformed_tokens_get_the_not_found_page(
        self, client: Client, db: None
    ) -> None:
        for token in ("A" * 22, "x", "..", "ü" * 20, "A" * 22 + "/../.."):
            response = client.get(f"/t/{token}/")
            assert response.status_code == 404
            assert "We cannot find this page" in html(response)

    def test_it_only_answers_get_and_head(
        self, client: Client, shipment: Shipment
    ) -> None:
        assert client.head(page_url(shipment)).status_code == 200
        assert client.post(page_url(shipment)).status_code == 405

    def test_it_does_a_constant_number_of_queries_and_none_when_cached(
        self,
        client: Client,
        shipment: Shipment,
        django_assert_max_num_queries: DjangoAssertNumQueries,
        django_assert_num_queries: DjangoAssertNumQueries,
    ) -> None:
        for _ in range(5):
            checkpoint_record(
                shipment=shipment, kind=EventKind.IN_TRANSIT_SCAN, user=None
            )
        with django_assert_max_num_queries(2):
            assert client.get(page_url(shipment)).status_code == 200
        with django_assert_num_queries(0):
            assert client.get(page_url(shipment)).status_code == 200

    def test_a_reload_of_an_unchanged_package_is_a_304(
        self, client: Client, shipment: Shipment
    ) -> None:
        first = client.get(page_url(shipment))
        etag = first["ETag"]
        assert etag
        again = client.get(page_url(shipment), headers={"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again["ETag"] == etag

    def test_a_new_event_changes_the_page_and_its_etag(
        self,
        client: Client,
        shipment: Shipment,
        django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    ) -> None:
        etag = client.get(page_url(shipment))["ETag"]
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint_record(
                shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None
            )
        response = client.get(page_url(shipment), headers={"if-none-match": etag})
        assert response.status_code == 200
        assert response["ETag"] != etag
        assert "Out for delivery today" in html(response)

    def test_a_page_rendered_before_an_event_is_never_served_after_it(
        self, client: Client, shipment: Shipment
    ) -> None:
        client.get(page_url(shipment))  # cached, generation g
        # The event commits and its on-commit bump runs; a request that read
        # the old rows before it may still store its page afterwards.
        checkpoint_record(shipment=shipment, kind=EventKind.OUT_FOR_DELIVERY, user=None)
        tracking_page_forget(shipment.public_token)
        assert "Out for delivery today" in html(client.get(page_url(shipment)))

    def test_cache_headers_are_private_and_short_and_vary_by_language(
        self, client: Client, shipment: Shipment
    ) -> None:
        response = client.get(page_url(shipment))
        control = response["Cache-Control"]
        assert "private" in control
        assert "max-age=60" in control
        assert "Accept-Language" in response["Vary"]
        assert "Set-Cookie" not in response.headers

    def test_it_follows_the_browsers_language(
        self, client: Client, shipment: Shipment
    ) -> None:
        english = client.get(page_url(shipment), headers={"accept-language": "en"})
        spanish = client.get(
            page_url(shipment), headers={"accept-language": "es-ES,es;q=0.9"}
        )
        assert spanish["Content-Language"] == "es"
        assert 'lang="es"' in html(spanish)
        assert "En camino" in html(spanish)
        assert "Llegó a un centro de clasificación" in html(spanish)
        assert "On its way" in html(english)
        assert spanish["ETag"] != english["ETag"]

    @override_settings(CACHES=DEAD_REDIS)
    def test_the_page_still_works_when_the_cache_is_down(
        self, shipment: Shipment
    ) -> None:
        # override_settings rebuilds the cache handler on its own (Django's
        # clear_cache_handlers), so the page meets the dead Redis here.
        response = Client().get(page_url(shipment))
        assert response.status_code == 200
        assert "On its way" in html(response)


class TestLookup:
    url = "/track/"

    def post(
        self, client: Client, number: str, second: str, ip: str = "10.0.0.1"
    ) -> TestResponse:
        return client.post(
            self.url,
            {"tracking_number": number, "second_factor": second},
            REMOTE_ADDR=ip,
        )

    def test_the_number_and_postcode_open_the_page(
        self, client: Client, shipment: Shipment
    ) -> None:
        response = self.post(client, "1z 999 aa1 0123 4567 84", "sw1a1aa")
        assert response.status_code == 302
        assert response["Location"] == page_url(shipment)

    def test_the_order_number_works_as_the_second_factor(
        self, client: Client, shipment: Shipment
    ) -> None:
        response = self.post(client, "1Z999AA10123456784", "ord-4711")
        assert response.status_code == 302

    def test_a_wrong_postcode_looks_exactly_like_an_unknown_number(
        self, client: Client, shipment: Shipment
    ) -> None:
        wrong = self.post(client, "1Z999AA10123456784", "90210")
        unknown = self.post(client, "1Z999AA10123456791", "90210")
        assert wrong.status_code == unknown.status_code == 404

        def bare(r: TestResponse) -> str:
            text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html(r))
            return text.replace("1Z999AA10123456784", "N").replace(
                "1Z999AA10123456791", "N"
            )

        assert bare(wrong) == bare(unknown)
        assert "We could not find a package" in html(wrong)

    def test_a_malformed_or_empty_number_is_a_400_at_the_field(
        self, client: Client, db: None
    ) -> None:
        response = self.post(client, "<script>", "x")
        assert response.status_code == 400
        assert "This is not a tracking number" in html(response)
        assert "<script>" not in html(response)
        empty = self.post(client, "", "")
        assert empty.status_code == 400
        assert 'aria-invalid="true"' in html(empty)
        huge = self.post(client, "A" * 5000, "B" * 5000)
        assert huge.status_code == 400

    def test_a_flood_from_one_address_gets_429(
        self, client: Client, shipment: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_CLIENT = "3/m"
        for _ in range(3):
            assert self.post(client, "1Z999AA10123456791", "1").status_code == 404
        response = self.post(client, "1Z999AA10123456784", "SW1A 1AA")
        assert response.status_code == 429
        assert response["Retry-After"]
        assert "try again later" in html(response).lower()
        # Another address is not affected.
        assert (
            self.post(
                client, "1Z999AA10123456784", "SW1A1AA", ip="10.0.0.2"
            ).status_code
            == 302
        )

    def test_guessing_one_numbers_postcode_from_many_addresses_is_capped(
        self, client: Client, shipment: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER = "3/h"
        number = "1Z999AA10123456784"
        for i in range(3):
            assert (
                self.post(client, number, f"0000{i}", ip=f"10.1.0.{i}").status_code
                == 404
            )
        # The number is under attack: an address that guessed wrong gets no
        # further guess on it, not even the right one by luck.
        for i in range(3):
            refused = self.post(client, number, f"1111{i}", ip=f"10.1.0.{i}")
            assert refused.status_code == 429
            assert refused["Retry-After"]
        assert self.post(client, number, "SW1A1AA", ip="10.1.0.0").status_code == 429
        # A new address has one guess, then it is refused too.
        assert self.post(client, number, "22222", ip="10.2.0.1").status_code == 404
        assert self.post(client, number, "22223", ip="10.2.0.1").status_code == 429
        # Other numbers are still looked up.
        assert (
            self.post(client, "1Z999AA10123456791", "x", ip="10.1.0.0").status_code
            == 404
        )

    def test_only_wrong_guesses_count_against_a_number(
        self, client: Client, shipment: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER = "3/h"
        number = "1Z999AA10123456784"
        # The owner, on several devices, looks the package up again and again.
        for i in range(5):
            assert self.post(
                client, number, "SW1A1AA", ip=f"10.3.0.{i}"
            ).status_code == (302)
        # Two typos still leave the right pair through from the same address.
        for i in range(2):
            assert (
                self.post(client, number, f"0000{i}", ip="10.3.1.1").status_code == 404
            )
        assert self.post(client, number, "SW1A1AA", ip="10.3.1.1").status_code == 302

    @override_settings(TRACKSOP_PROXY_COUNT=1)
    def test_a_flood_of_wrong_guesses_from_many_addresses_never_locks_the_owner_out(
        self, client: Client, shipment: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER = "3/h"
        number = "1Z999AA10123456784"
        for i in range(40):
            client.post(
                self.url,
                {"tracking_number": number, "second_factor": f"{i:05d}"},
                REMOTE_ADDR="10.9.9.9",
                HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
            )
        for second in ("SW1A 1AA", "ORD-4711"):
            owner = client.post(
                self.url,
                {"tracking_number": number, "second_factor": second},
                REMOTE_ADDR="10.9.9.9",
                HTTP_X_FORWARDED_FOR="198.51.100.7",
            )
            assert owner.status_code == 302
            assert owner["Location"] == page_url(shipment)

    def test_wrong_guesses_look_alike_for_existing_and_unknown_numbers_under_attack(
        self,
        client: Client,
        shipment: Shipment,
        settings: Settings,
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER = "2/h"
        existing, unknown = "1Z999AA10123456784", "1Z999AA10123456791"

        def bare(r: TestResponse) -> tuple[int, str | None, str]:
            text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html(r))
            return (
                r.status_code,
                r.get("Retry-After"),
                text.replace(existing, "N").replace(unknown, "N"),
            )

        with time_machine.travel(timezone.now(), tick=False):
            for ip in ("10.4.0.1", "10.4.0.2", "10.4.0.3", "10.4.0.3"):
                # The same work both ways: the same queries, the same counts.
                with CaptureQueriesContext(connection) as on_existing:
                    a = self.post(client, existing, "00000", ip=ip)
                with CaptureQueriesContext(connection) as on_unknown:
                    b = self.post(client, unknown, "00000", ip=ip)
                assert bare(a) == bare(b)
                assert len(on_existing) == len(on_unknown)
        assert [a.status_code, b.status_code] == [429, 429]

    @override_settings(TRACKSOP_PROXY_COUNT=1)
    def test_behind_a_proxy_the_client_is_the_forwarded_address(
        self, client: Client, shipment: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_CLIENT = "1/m"

        def post(forwarded: str) -> TestResponse:
            return client.post(
                self.url,
                {"tracking_number": "1Z999AA10123456791", "second_factor": "1"},
                REMOTE_ADDR="10.9.9.9",
                HTTP_X_FORWARDED_FOR=forwarded,
            )

        assert post("203.0.113.5").status_code == 404
        assert post("203.0.113.5").status_code == 429
        assert post("203.0.113.6").status_code == 404

    @override_settings(CACHES=DEAD_REDIS)
    def test_while_redis_is_down_the_limits_still_hold(
        self, client: Client, shipment: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_LOOKUP_RATE_PER_CLIENT = "5/m"
        settings.TRACKSOP_LOOKUP_RATE_PER_NUMBER = "2/h"
        number = "1Z999AA10123456784"
        assert self.post(client, number, "00001", ip="10.5.0.1").status_code == 404
        assert self.post(client, number, "00002", ip="10.5.0.2").status_code == 404
        # Under attack: no second guess from an address that guessed wrong.
        assert self.post(client, number, "00003", ip="10.5.0.1").status_code == 429
        # The owner still gets through from an address of their own.
        assert self.post(client, number, "SW1A1AA", ip="10.5.0.9").status_code == 302
        # And one address is still held to its own limit.
        for _ in range(4):
            self.post(client, "1Z999AA10123456791", "x", ip="10.5.0.9")
        assert self.post(client, number, "SW1A1AA", ip="10.5.0.9").status_code == 429

    def test_it_needs_a_csrf_token(self, shipment: Shipment) -> None:
        client = Client(enforce_csrf_checks=True)
        response = client.post(
            self.url,
            {"tracking_number": "1Z999AA10123456784", "second_factor": "SW1A1AA"},
        )
        assert response.status_code == 403


@pytest.fixture
def delivered(shipment: Shipment) -> Shipment:
    checkpoint_record(shipment=shipment, kind=EventKind.DELIVERED, user=None)
    shipment.refresh_from_db()
    return shipment


class TestFeedback:
    def url(self, s: Shipment) -> str:
        return reverse("public-feedback", args=[s.public_token])

    def test_it_is_offered_on_the_page_after_delivery_only(
        self, client: Client, shipment: Shipment
    ) -> None:
        assert "public-feedback" not in html(client.get(page_url(shipment)))
        assert self.url(shipment) not in html(client.get(page_url(shipment)))
        checkpoint_record(shipment=shipment, kind=EventKind.DELIVERED, user=None)
        tracking_page_forget(shipment.public_token)
        assert self.url(shipment) in html(client.get(page_url(shipment)))

    def test_a_rating_and_comment_are_stored_once(
        self, client: Client, delivered: Shipment
    ) -> None:
        response = client.post(
            self.url(delivered), {"rating": "4", "comment": "  Fast, thanks  "}
        )
        assert response.status_code == 302
        feedback = Feedback.objects.get(shipment=delivered)
        assert (feedback.rating, feedback.comment) == (4, "Fast, thanks")
        assert "Thank you" in html(client.get(self.url(delivered)))
        again = client.post(self.url(delivered), {"rating": "1"})
        assert again.status_code == 409
        assert "already have your feedback" in html(again)
        assert Feedback.objects.get(shipment=delivered).rating == 4

    def test_the_page_thanks_instead_of_asking_again(
        self,
        client: Client,
        delivered: Shipment,
        django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
    ) -> None:
        assert self.url(delivered) in html(client.get(page_url(delivered)))
        with django_capture_on_commit_callbacks(execute=True):
            client.post(self.url(delivered), {"rating": "5"})
        body = html(client.get(page_url(delivered)))
        assert self.url(delivered) not in body
        assert "Thank you for telling us" in body

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({}, "Choose a rating from 1 to 5."),
            ({"rating": "6"}, "Select a valid choice"),
            ({"rating": "x"}, "Select a valid choice"),
            ({"rating": "3", "comment": "x" * 1001}, "at most 1000 characters"),
        ],
    )
    def test_bad_input_is_a_400_at_the_field_and_stores_nothing(
        self, client: Client, delivered: Shipment, data: dict[str, str], message: str
    ) -> None:
        response = client.post(self.url(delivered), data)
        assert response.status_code == 400
        assert message in html(response)
        assert not Feedback.objects.exists()

    def test_script_in_a_comment_is_stored_as_text_and_never_run(
        self, client: Client, delivered: Shipment
    ) -> None:
        script = "<script>alert(1)</script>\x07"
        response = client.post(
            self.url(delivered), {"rating": "3", "comment": "x" * 1001 + script}
        )
        assert response.status_code == 400
        assert "<script>alert(1)" not in html(response)
        client.post(self.url(delivered), {"rating": "3", "comment": script})
        assert Feedback.objects.get().comment == "<script>alert(1)</script>"

    def test_before_delivery_it_is_refused(
        self, client: Client, shipment: Shipment
    ) -> None:
        assert "once the package is delivered" in html(client.get(self.url(shipment)))
        response = client.post(self.url(shipment), {"rating": "5"})
        assert response.status_code == 400
        assert not Feedback.objects.exists()

    def test_an_unknown_token_is_a_404(self, client: Client, db: None) -> None:
        assert (
            client.post("/t/" + "B" * 22 + "/feedback/", {"rating": "5"}).status_code
            == 404
        )

    @pytest.mark.django_db(transaction=True)
    def test_two_submissions_at_once_store_one(self, delivered: Shipment) -> None:
        def give(rating: int) -> str:
            try:
                feedback_record(shipment=delivered, rating=rating)
            except FeedbackRefused:
                return "refused"
            return "stored"

        outcomes = race(lambda: give(5), lambda: give(1))
        assert sorted(outcomes) == ["refused", "stored"]
        assert Feedback.objects.count() == 1

    def test_a_flood_of_posts_gets_429(
        self, client: Client, delivered: Shipment, settings: Settings
    ) -> None:
        settings.TRACKSOP_PUBLIC_POST_RATE = "2/m"
        client.post(self.url(delivered), {"rating": "9"})
        client.post(self.url(delivered), {"rating": "9"})
        assert client.post(self.url(delivered), {"rating": "5"}).status_code == 429
        assert not Feedback.objects.exists()


def test_the_feedback_permission_belongs_to_staff_roles(db: None) -> None:
    user = UserFactory(role=roles.CUSTOMER_SERVICE)
    assert user.has_perm("shipments.view_feedback")


def test_staff_read_the_rating_and_comment_on_the_shipment_page(
    client: Client, delivered: Shipment
) -> None:
    feedback_record(shipment=delivered, rating=2, comment="<b>Box</b> was wet")
    client.force_login(UserFactory(role=roles.CUSTOMER_SERVICE))
    body = html(client.get(delivered.get_absolute_url()))
    assert "Customer feedback" in body
    assert "2/5" in body
    assert "&lt;b&gt;Box&lt;/b&gt; was wet" in body


def test_the_delivered_message_links_to_the_feedback_form(delivered: Shipment) -> None:
    from notifications.models import Channel, Kind, Notification

    message = Notification.objects.get(
        shipment=delivered, kind=Kind.DELIVERED, channel=Channel.EMAIL
    )
    link = reverse("public-feedback", args=[delivered.public_token])
    assert link in message.body_text
    assert link in message.body_html


def test_the_lookup_takes_a_scanned_usps_label(client: Client, db: None) -> None:
    number = "9400111206206406260787"
    shipment = dispatched_shipment(
        carrier=CarrierFactory(code="usps", name="USPS", tracking_family="usps"),
        tracking_number=number,
        recipient_postcode="78745",
    )
    found = client.post(
        "/track/", {"tracking_number": f"420 78745 {number}", "second_factor": "78745"}
    )
    assert found.status_code == 302
    assert found["Location"] == page_url(shipment)
    # One wrong digit: no such package.
    wrong = client.post(
        "/track/",
        {"tracking_number": f"42078745{number[:-1]}8", "second_factor": "78745"},
    )
    assert wrong.status_code == 404
