"""Every staff page fits the screen it is used on, and its controls are
announced by their labels alone.

The pages are listed from the URLconf, so a new page cannot be forgotten: a
route is either a page here or named with the reason it has none. The data is
what makes pages wide in real life: a long timeline, messages with long links
and errors, an open exception, long names and email addresses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from exceptions_mgmt import reporting as exception_reporting
from exceptions_mgmt import services as exception_services
from exceptions_mgmt.models import DeliveryException
from notifications.models import Channel, Status
from reports import services as report_services
from reports.models import ReportRun
from shipments.access import access_log_write
from shipments.checkpoints import checkpoint_record
from shipments.inquiries import inquiry_log
from shipments.models import Shipment
from shipments.status import EventKind
from tests.browser.conftest import PASSWORD
from tests.factories import (
    LocationFactory,
    NotificationFactory,
    ShipmentFactory,
    UserFactory,
    dispatched_shipment,
    ready_shipment,
)
from tracksop import roles

pytestmark = pytest.mark.browser

LONG_NAME = "Maximiliane-Alexandra Konstantinopoulou-Vanderheijden"
LONG_EMAIL = (
    "maximiliane.alexandra.konstantinopoulou-vanderheijden"
    "@customer-services.international-example-corporation.com"
)
LONG_URL = (
    "https://tracking.international-example-corporation.com/t/"
    "Q2hlY2tUaGVMYXlvdXRPZkV2ZXJ5U3RhZmZQYWdlQXRFdmVyeVdpZHRo/manage/"
    "0123456789abcdef0123456789abcdef/"
)
HUB = "Chicago O'Hare Consolidation and Distribution Hub"
SUPERVISOR = "alexandra.konstantinopoulou-whitfield"


@dataclass(frozen=True)
class Data:
    long: Shipment
    created: Shipment
    ready: Shipment
    reportable: Shipment
    exception: DeliveryException
    report: ReportRun


@pytest.fixture
def data(escalation_rules: None) -> Data:
    # Staff as well, so the navigation shows every link, Admin included.
    boss = UserFactory(
        username=SUPERVISOR,
        first_name="Alexandra-Maximiliane",
        last_name="Konstantinopoulou-Whitfield",
        role=roles.SUPERVISOR,
        is_staff=True,
    )
    worker = UserFactory(
        username="bartholomew.featherstonehaugh",
        first_name="Bartholomew",
        last_name="Featherstonehaugh-Cholmondeley",
        role=roles.LOGISTICS,
    )
    hubs = [
        LocationFactory(
            code="fra",
            name="Frankfurt am Main International Air Cargo Centre, Gate 7",
            city="Frankfurt am Main",
            country="DE",
            timezone="Europe/Berlin",
        ),
        LocationFactory(
            code="chi",
            name=HUB,
            city="Chicago",
        ),
    ]
    long = dispatched_shipment(
        recipient_name=LONG_NAME,
        recipient_email=LONG_EMAIL,
        recipient_address="Apartment 1204, Building C\nKönigin-Luise-Straße 128-132",
        recipient_city="Frankfurt am Main",
        contents="Replacement parts for industrial espresso machines (fragile)",
    )
    kinds = [
        EventKind.ARRIVED_HUB,
        EventKind.IN_TRANSIT_SCAN,
        EventKind.DEPARTED_HUB,
        EventKind.NOTE,
    ]
    for i in range(40):
        checkpoint_record(
            shipment=long.pk,
            kind=kinds[i % len(kinds)],
            user=worker if i % 3 else None,
            location=hubs[i % 2],
            notes=(
                "Label partly torn; re-labelled at the sorting belt and "
                f"checked against the manifest {LONG_URL}"
                if i % 5 == 0
                else ""
            ),
        )
    long.refresh_from_db()
    NotificationFactory(
        shipment=long,
        channel=Channel.EMAIL,
        to=LONG_EMAIL,
        subject=f"Your order {long.order_number} is on its way: track it online",
        body_text=f"Your order is on its way.\n\nTrack & manage: {LONG_URL}\n",
        status=Status.FAILED,
        attempts=5,
        sent_at=None,
        last_error=(
            "550 5.1.1 <" + LONG_EMAIL + ">: Recipient address rejected: "
            "User unknown in virtual mailbox table"
        ),
    )
    NotificationFactory(
        shipment=long,
        channel=Channel.SMS,
        to="+4915112345678",
        subject="",
        body_text=f"Your order is on its way. Track & manage: {LONG_URL}",
    )
    inquiry_log(
        shipment=long,
        user=boss,
        channel="phone",
        question="Caller asks whether the parcel can be left with the neighbour "
        "at number 130 because nobody is home during the day this week.",
        answer="Told her we add a note for the driver; the carrier decides.",
    )
    inquiry_log(
        shipment=long,
        user=boss,
        channel="email",
        question=f"Customer writes from {LONG_EMAIL} about the delivery window.",
    )
    # Seen by both, once through a search for the long address.
    access_log_write(
        user=worker,
        page="search",
        shipments=[long],
        path="/shipments/search/?q=" + LONG_EMAIL + "&x=" + "y" * 200,
    )
    access_log_write(user=boss, page="shipment", shipments=[long], path="/x")
    exception = exception_reporting.exception_report(
        shipment=long.pk,
        user=worker,
        cause="other",
        cause_other="Consignee's company closed for inventory until further notice",
        severity="high",
        description="The reception desk refused the parcel: " + LONG_URL,
        expected_resolution=timezone.now() + timedelta(days=2),
    )
    exception = exception_services.exception_assign(
        exception=exception, user=boss, assignee=worker
    )
    exception_services.exception_note_add(
        exception=exception,
        user=worker,
        text="Called the consignee twice; voicemail each time. " + LONG_URL,
    )
    return Data(
        long=long,
        created=ShipmentFactory(recipient_name=LONG_NAME, recipient_email=LONG_EMAIL),
        ready=ready_shipment(recipient_name=LONG_NAME),
        reportable=dispatched_shipment(recipient_name=LONG_NAME),
        exception=exception,
        report=finished_report(boss),
    )


def finished_report(user: Any) -> ReportRun:
    """Last month's report over the data above, made here (no worker)."""
    last_month = timezone.localdate().replace(day=1) - timedelta(days=1)
    run = report_services.report_request(kind="monthly", start=last_month, user=user)
    made = report_services.report_make(run.pk)
    assert made is not None
    return made


def _void_url(d: Data) -> str:
    event = d.long.events.exclude(
        kind__in=[EventKind.CREATED, EventKind.CORRECTION]
    ).first()
    assert event is not None
    return reverse("event-void", args=[d.long.shipment_id, event.pk])


def _code(name: str) -> Callable[[Data], str]:
    return lambda d: reverse(name, args=[d.long.shipment_id])


# The staff pages, by URL name: how to reach each with the data above.
PAGES: dict[str, Callable[[Data], str]] = {
    "dashboard": lambda d: reverse("dashboard"),
    "preferences": lambda d: reverse("preferences"),
    "shipment-search": lambda d: reverse("shipment-search") + "?q=Konstantinopoulou",
    "shipment-create": lambda d: reverse("shipment-create"),
    "bulk-scan": lambda d: reverse("bulk-scan"),
    "monitor": lambda d: reverse("monitor"),
    "inquiry-list": lambda d: reverse("inquiry-list"),
    "shipment-detail": _code("shipment-detail"),
    "shipment-access": _code("shipment-access"),
    "shipment-edit": lambda d: reverse("shipment-edit", args=[d.created.shipment_id]),
    "shipment-check": lambda d: reverse("shipment-check", args=[d.created.shipment_id]),
    "shipment-dispatch": lambda d: reverse(
        "shipment-dispatch", args=[d.ready.shipment_id]
    ),
    "checkpoint-create": _code("checkpoint-create"),
    "shipment-eta": _code("shipment-eta"),
    "shipment-cancel": lambda d: reverse(
        "shipment-cancel", args=[d.created.shipment_id]
    ),
    "event-void": _void_url,
    "notification-failed": lambda d: reverse("notification-failed"),
    "template-preview": lambda d: (
        reverse("template-preview") + "?kind=dispatched&channel=email"
    ),
    "exception-queue": lambda d: reverse("exception-queue"),
    "exception-scan": lambda d: reverse("exception-scan"),
    "exception-report": lambda d: reverse(
        "exception-report", args=[d.reportable.shipment_id]
    ),
    "exception-detail": lambda d: reverse("exception-detail", args=[d.exception.pk]),
    "login": lambda d: reverse("login"),
    "password_change": lambda d: reverse("password_change"),
    "password_change_done": lambda d: reverse("password_change_done"),
    "password_reset": lambda d: reverse("password_reset"),
    "password_reset_done": lambda d: reverse("password_reset_done"),
    "password_reset_confirm": lambda d: reverse(
        "password_reset_confirm", args=["MQ", "set-password"]
    ),
    "password_reset_complete": lambda d: reverse("password_reset_complete"),
    "report-list": lambda d: reverse("report-list"),
    "report-detail": lambda d: reverse("report-detail", args=[d.report.pk]),
}

# Routes with no staff page of their own, and why.
API_ROUTES = {
    "api-schema",
    "api-docs",
    "api-shipments",
    "api-shipment",
    "api-check",
    "api-dispatch",
    "api-cancel",
    "api-checkpoint",
    "api-tracking",
    "api-checkpoints",
    "api-carrier-webhook",
    "api-webhooks",
    "api-webhook",
    "api-webhook-rotate",
    "api-webhook-enable",
    "api-webhook-test",
    "api-webhook-messages",
    "api-webhook-message",
    "api-webhook-replay",
}
NOT_PAGES = {
    # POST-only actions: they redirect to a page listed above.
    "inquiry-create",
    "inquiry-answer",
    "exception-assign",
    "exception-note",
    "exception-reschedule",
    "exception-resolve",
    "notification-resend",
    "shipment-sync-now",
    "logout",
    # A report's PDF, CSV or XLSX download.
    "report-file",
    # The frame inside the message preview, checked with it.
    "template-preview-html",
    # The public pages: their own base template, tested in test_public*.py.
    "public-lookup",
    "public-tracking",
    "public-feedback",
    "public-subscribe",
    "public-subscribe-confirm",
    "public-subscription-stop",
    "public-subscription-unsubscribe",
    "notification-manage",
    "notification-unsubscribe",
}
# The integration API: JSON, not pages (tests/api/), and the schema's
# reference page, which is Swagger UI's own layout.
NOT_PAGES |= API_ROUTES

# Used at a hub's tablet or on a phone (a supervisor reads reports on one too).
HUB_AND_PHONE_PAGES = [
    "dashboard",
    "shipment-search",
    "bulk-scan",
    "checkpoint-create",
    "shipment-detail",
    "exception-queue",
    "exception-detail",
    "exception-scan",
    "exception-report",
    "report-list",
    "report-detail",
]


def url_names(patterns: list[Any]) -> Iterator[str]:
    """Every route's name, Django's admin left out (its own layout)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name != "admin":
                yield from url_names(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield pattern.name


# The page's own width and what makes it wider, outside boxes that scroll.
WIDTH_JS = """() => {
  const W = window.innerWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if (x === 'auto' || x === 'scroll' || x === 'hidden') return true;
    }
    return false;
  };
  const wide = [...document.body.querySelectorAll('*')]
    .filter((el) => el.getBoundingClientRect().right > W + 0.5 && !scrolls(el))
    .slice(0, 3)
    .map((el) => el.outerHTML.slice(0, 120));
  return {width: document.documentElement.scrollWidth, wide};
}"""

# Shipment IDs (SH-…) broken over two lines, as the text of the element.
WRAPPED_IDS_JS = """(codes) => {
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode()); ) {
    if (!node.parentElement.checkVisibility()) continue;  // a closed <details>
    for (const code of codes) {
      const at = node.data.indexOf(code);
      if (at < 0) continue;
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + code.length);
      const tops = [...range.getClientRects()].map((r) => r.top);
      const wrapped = Math.max(...tops) - Math.min(...tops) >= 8;
      if (wrapped) out.push(node.parentElement.outerHTML.slice(0, 120));
    }
  }
  return out;
}"""

# Controls whose accessible name is not just their label: two labels for one
# id (the second control then has none) or a required marker read out.
LABEL_PROBLEMS_JS = """() => {
  const out = [];
  const ids = {};
  for (const el of document.querySelectorAll('[id]')) {
    ids[el.id] = (ids[el.id] || 0) + 1;
  }
  for (const [id, n] of Object.entries(ids)) {
    if (n > 1) out.push(`id ${id} used ${n} times`);
  }
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (el.type === 'hidden' || !el.labels) continue;
    if (el.labels.length > 1) out.push(`${el.name}: ${el.labels.length} labels`);
  }
  return out;
}"""


# Whether each element's text sits on a single line (a second line starts a
# line-height lower; a few pixels are an inline box's alignment).
ONE_LINE_JS = """(els) => els.filter((el) => el.offsetParent).every((el) => {
  const range = document.createRange();
  range.selectNodeContents(el);
  const tops = [...range.getClientRects()].map((r) => r.top);
  return Math.max(...tops) - Math.min(...tops) < 8;
})"""


def log_in_as_supervisor(page: Page, live_server: Any) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(SUPERVISOR)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def accessible_names_with_asterisk(page: Page) -> list[str]:
    """Form controls whose computed accessible name has a "*" in it."""
    session = page.context.new_cdp_session(page)
    nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    session.detach()
    controls = {"textbox", "combobox", "checkbox", "radio", "spinbutton", "searchbox"}
    return [
        node["name"]["value"]
        for node in nodes
        if node.get("role", {}).get("value") in controls
        and "*" in node.get("name", {}).get("value", "")
    ]


def layout_problems(page: Page, url: str, codes: list[str]) -> list[str]:
    response = page.goto(url)
    assert response is not None
    assert response.status == 200, f"{url}: {response.status}"
    problems = []
    width = page.evaluate(WIDTH_JS)
    if width["width"] > page.viewport_size["width"]:  # type: ignore[index]
        problems.append(f"{url} is {width['width']} px wide: {width['wide']}")
    for wrapped in page.evaluate(WRAPPED_IDS_JS, codes):
        problems.append(f"{url}: a shipment ID wraps in {wrapped}")
    return problems


def test_every_route_is_checked_as_a_page_or_named_as_none() -> None:
    names = set(url_names(get_resolver().url_patterns))
    assert names - set(PAGES) - NOT_PAGES == set(), "a new page: add it to PAGES"
    assert (set(PAGES) | NOT_PAGES) - names == set()


def test_no_staff_page_scrolls_sideways_at_1280_px(
    page: Page, live_server: LiveServer, data: Data
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in_as_supervisor(page, live_server)
    codes = [data.long.shipment_id, data.created.shipment_id]
    problems = []
    for path in PAGES.values():
        url = live_server.url + path(data)
        problems += layout_problems(page, url, codes)
        problems += [f"{url}: {p}" for p in page.evaluate(LABEL_PROBLEMS_JS)]
        problems += [
            f"{url}: control announced as {n!r}"
            for n in accessible_names_with_asterisk(page)
        ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width", [768, 375])
def test_hub_and_phone_pages_do_not_scroll_sideways(
    page: Page, live_server: LiveServer, data: Data, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    log_in_as_supervisor(page, live_server)
    codes = [data.long.shipment_id]
    problems = []
    for name in HUB_AND_PHONE_PAGES:
        problems += layout_problems(page, live_server.url + PAGES[name](data), codes)

    # A bulk scan's answer lists the refused numbers with their reasons.
    page.goto(live_server.url + reverse("bulk-scan"))
    page.get_by_label("What happened").select_option(label="Arrived at hub")
    page.get_by_label("Location").select_option(label=HUB + " (Chicago)")
    page.get_by_label("Tracking numbers").fill(
        f"{data.long.tracking_number}\n1Z999AA10123456784\n{'9' * 40}"
    )
    page.get_by_role("button", name="Save scans").click()
    expect(page.get_by_test_id("scan-problems")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    assert not problems, "\n".join(problems)


def test_the_navigation_fits_on_one_row_or_collapses_behind_the_menu(
    page: Page, live_server: LiveServer, data: Data
) -> None:
    log_in_as_supervisor(page, live_server)
    for width in (1280, 1400, 1920):
        page.set_viewport_size({"width": width, "height": 800})
        page.goto(live_server.url + reverse("dashboard"))
        nav = page.get_by_role("navigation")
        menu = nav.get_by_role("button", name="Menu")
        search = nav.get_by_role("searchbox", name="Search shipments")
        expect(search).to_be_visible()
        if menu.is_visible():
            expect(nav.get_by_role("link", name="Monitor")).to_be_hidden()
            menu.click()
            expect(nav.get_by_role("link", name="Message templates")).to_be_visible()
            continue
        boxes = [
            item.bounding_box()
            for item in nav.locator(
                ".navbar-brand, .nav-link, form, .navbar-text"
            ).all()
        ]
        assert all(b is not None for b in boxes)
        # One row: every item overlaps every other vertically.
        top = max(b["y"] for b in boxes if b)
        bottom = min(b["y"] + b["height"] for b in boxes if b)
        assert top < bottom, f"the navigation wraps at {width} px"
        one_line = nav.locator(".nav-link, .navbar-text, button").evaluate_all(
            ONE_LINE_JS
        )
        assert one_line, f"a navigation link wraps at {width} px"


def test_the_shipment_pages_messages_keep_resend_on_a_1280_px_screen(
    page: Page, live_server: LiveServer, data: Data
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in_as_supervisor(page, live_server)
    page.goto(live_server.url + data.long.get_absolute_url())
    history = page.get_by_test_id("notification-history")
    for summary in history.locator("summary").all():
        summary.click()  # the message's text, with its long link

    resend = history.get_by_role("button", name="Resend Dispatched Email")
    resend.scroll_into_view_if_needed()
    box = resend.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 1280
    table = history.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    assert table, "the messages table scrolls sideways"


def test_the_queues_filter_and_bulk_assignee_are_announced_by_their_own_labels(
    page: Page, live_server: LiveServer, data: Data
) -> None:
    log_in_as_supervisor(page, live_server)
    page.goto(live_server.url + reverse("exception-queue"))

    filters = page.get_by_test_id("exception-filters")
    bulk = page.get_by_test_id("bulk-actions")
    expect(page.get_by_label("Assignee", exact=True)).to_have_count(1)
    expect(filters.get_by_role("combobox", name="Assignee", exact=True)).to_be_visible()
    expect(bulk.get_by_role("combobox", name="Assign to", exact=True)).to_be_visible()
    expect(page.get_by_role("combobox", name="Assignee Assign to")).to_have_count(0)


def test_a_required_field_is_announced_without_its_asterisk(
    page: Page, live_server: LiveServer, data: Data
) -> None:
    log_in_as_supervisor(page, live_server)
    page.goto(
        live_server.url
        + reverse("exception-report", args=[data.reportable.shipment_id])
    )

    expect(page.get_by_role("combobox", name="Cause", exact=True)).to_be_visible()
    expect(page.get_by_label("Cause", exact=True)).to_have_count(1)
    # That it is required is the control's own state, not part of its name.
    when = page.get_by_role("textbox", name="Expected resolution", exact=True)
    expect(when).to_have_attribute("required", "")
    # The asterisk is still there for the eye.
    marker = page.locator("label[for=id_cause] + [aria-hidden=true]")
    expect(marker).to_have_text("*")
    expect(marker).to_be_visible()


def test_staff_and_public_pages_have_a_favicon(
    page: Page, live_server: LiveServer, data: Data
) -> None:
    log_in_as_supervisor(page, live_server)
    public_url = reverse("public-tracking", args=[data.long.public_token])
    for url in (reverse("dashboard"), reverse("login"), public_url):
        page.goto(live_server.url + url)
        icon = page.locator("link[rel=icon]")
        expect(icon).to_have_count(1)
        href = icon.get_attribute("href")
        assert href
        response = page.request.get(live_server.url + href)
        assert response.status == 200
        assert response.headers["content-type"].startswith("image/svg+xml")
