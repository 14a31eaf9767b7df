"""Staff pages for messages, the customer's manage link, and the tracking
page's "get updates" pages (no login)."""

from __future__ import annotations

import logging
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from notifications import delivery, links, outbox, rendering, selectors, subscriptions
from notifications.forms import (
    PreferenceForm,
    PreviewForm,
    SubscribeForm,
    SubscriptionCodeForm,
)
from notifications.models import (
    Audience,
    Channel,
    Notification,
    Preference,
    Subscription,
)
from notifications.subscriptions import SubscriptionError
from shipments.models import Shipment
from tracksop.http import over_limit, public_not_found, public_page, too_many
from tracksop.web import GET_POST, paginate, posted, staff_view

log = logging.getLogger(__name__)


def _back(request: HttpRequest, fallback: str) -> HttpResponse:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(fallback)


@staff_view("notifications.resend_notification")
@require_POST
def resend(request: HttpRequest, pk: int) -> HttpResponse:
    original = get_object_or_404(Notification.objects.select_related("shipment"), pk=pk)
    try:
        row = delivery.notification_resend(
            notification=original, user=cast(User, request.user)
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"{row.get_kind_display()} {row.get_channel_display()} queued to {row.to}.",
        )
    about = original.shipment or original.report
    return _back(request, about.get_absolute_url() + "#messages" if about else "/")


@staff_view("notifications.view_notification")
@GET_POST
def failed_list(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not request.user.has_perm("notifications.resend_notification"):
            raise PermissionDenied
        ids = request.POST.getlist("ids")
        chosen = selectors.failed_notifications().filter(
            pk__in=[i for i in ids if i.isdigit()][: settings.TRACKSOP_PAGE_SIZE]
        )
        sent, refused = 0, []
        for row in chosen:
            try:
                delivery.notification_resend(
                    notification=row, user=cast(User, request.user)
                )
                sent += 1
            except ValidationError as exc:
                refused.append(
                    f"{row.shipment or row.report}: {' '.join(exc.messages)}"
                )
        if sent:
            messages.success(
                request,
                ngettext(
                    "%(count)d message queued again.",
                    "%(count)d messages queued again.",
                    sent,
                )
                % {"count": sent},
            )
        for problem in refused:
            messages.error(request, problem)
        if not ids:
            messages.error(request, "Tick the messages to send again.")
        return redirect("notification-failed")
    page = paginate(request, selectors.failed_notifications())
    return render(request, "notifications/failed.html", {"page": page})


# The email's HTML is a supervisor's edited template: at its own address it
# may be framed by the preview page alone, and runs nothing even when opened
# by itself (sandbox: an opaque origin, no scripts). Set here, so a site-wide
# policy does not replace it (Django's CSP middleware keeps a view's own).
PREVIEW_FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox"
)


def _preview(
    request: HttpRequest, form: PreviewForm
) -> tuple[dict[str, Any] | None, int]:
    """The rendered message the form asks for, and the status to answer with."""
    if not form.is_bound:
        return None, 200
    if not form.is_valid():
        return None, 400
    data = form.cleaned_data
    shipment = rendering.sample_shipment()
    if data["shipment"]:
        if not request.user.has_perm("shipments.view_shipment"):
            raise PermissionDenied
        shipment = get_object_or_404(
            Shipment.objects.select_related("carrier"),
            shipment_id=data["shipment"].upper(),
        )
    audience = Audience.STAFF if data["kind"] == "escalation" else Audience.RECIPIENT
    context = rendering.message_context(shipment=shipment, audience=audience)
    context.update(rendering.sample_details(context))
    try:
        if data["source"] == "file":
            rendered = rendering.render_default(data["kind"], data["channel"], context)
        else:
            rendered = rendering.render(data["kind"], data["channel"], context)
    except rendering.TemplateFailed as exc:
        form.add_error(None, str(exc))
        return None, 400
    return {
        "rendered": rendered,
        "is_sms": data["channel"] == Channel.SMS,
        "segments": rendering.sms_segments(rendered.text),
        "length": len(rendered.text),
        "missing": rendering.missing_for(data["kind"], context),
        "frame_url": f"{reverse('template-preview-html')}?{request.GET.urlencode()}",
    }, 200


@staff_view("notifications.preview_template")
@require_GET
def template_preview(request: HttpRequest) -> HttpResponse:
    form = PreviewForm(request.GET or None)
    preview, status = _preview(request, form)
    return render(
        request,
        "notifications/preview.html",
        {"form": form, "preview": preview},
        status=status,
    )


@staff_view("notifications.preview_template")
@require_GET
@xframe_options_sameorigin
def template_preview_html(request: HttpRequest) -> HttpResponse:
    """The previewed email's HTML alone, for the preview page's frame."""
    form = PreviewForm(request.GET)
    preview, status = _preview(request, form)
    if preview is None:
        return HttpResponseBadRequest(
            form.errors.as_text(), content_type="text/plain; charset=utf-8"
        )
    if preview["is_sms"] or not preview["rendered"].html:
        raise Http404("This message has no HTML version.")
    response = HttpResponse(preview["rendered"].html, status=status)
    response["Content-Security-Policy"] = PREVIEW_FRAME_POLICY
    return response


def _party(token: str, code: str) -> tuple[Shipment, str]:
    """The shipment and party a manage link was made for; 404 for a forged or
    mistyped link, the same as for an unknown one."""
    shipment = get_object_or_404(
        Shipment.objects.select_related("carrier"), public_token=token
    )
    audience = links.manage_audience(token, code)
    if audience is None:
        raise Http404(_("This link is not valid."))
    return shipment, audience


@never_cache
@GET_POST
def manage(request: HttpRequest, token: str, code: str) -> HttpResponse:
    shipment, audience = _party(token, code)
    current = selectors.preference_for(shipment, audience)
    form = PreferenceForm(posted(request), initial={"channels": current})
    status = 200
    saved = False
    if request.method == "POST":
        if "stop" in request.POST:
            outbox.preference_set(
                shipment=shipment, audience=audience, channels=Preference.Choice.NONE
            )
            current, saved = Preference.Choice.NONE, True
        elif form.is_valid():
            outbox.preference_set(
                shipment=shipment,
                audience=audience,
                channels=form.cleaned_data["channels"],
            )
            current, saved = form.cleaned_data["channels"], True
        else:
            status = 400
        if saved:
            form = PreferenceForm(initial={"channels": current})
    return render(
        request,
        "public/manage.html",
        {
            "shipment": shipment,
            "form": form,
            "current": Preference.Choice(current).label,
            "saved": saved,
            "stopped": current == Preference.Choice.NONE,
            "company": settings.TRACKSOP_COMPANY_NAME,
            "tracking_url": links.tracking_url(shipment.public_token),
        },
        status=status,
    )


# RFC 8058: the mail client posts "List-Unsubscribe=One-Click" with no cookie
# or CSRF token; the signed code in the URL is the authority.
@csrf_exempt
@never_cache
@GET_POST
def unsubscribe(request: HttpRequest, token: str, code: str) -> HttpResponse:
    shipment, audience = _party(token, code)
    if request.method == "GET":
        # Link scanners fetch URLs in mail: a GET never unsubscribes.
        return redirect("notification-manage", token=token, code=code)
    outbox.preference_set(
        shipment=shipment, audience=audience, channels=Preference.Choice.NONE
    )
    return HttpResponse(_("You will get no more updates about this shipment."))


# --- "Get updates" from the tracking page (no login) ------------------------------


def _public_shipment(token: str) -> Shipment | None:
    return (
        Shipment.objects.only("id", "status", "public_token", "recipient_country")
        .filter(public_token=token)
        .first()
    )


@never_cache
@GET_POST
def subscribe(request: HttpRequest, token: str) -> HttpResponse:
    shipment = _public_shipment(token)
    if shipment is None:
        return public_not_found(request)
    form = SubscribeForm(posted(request))
    context = {
        "form": form,
        "closed": shipment.is_closed,
        "status": shipment.get_status_display(),
        "tracking_url": links.tracking_url(token),
    }
    if request.method != "POST":
        return public_page(request, "public/subscribe.html", context)
    if wait := over_limit(
        request, group="public-subscribe", rate=settings.TRACKSOP_PUBLIC_POST_RATE
    ):
        return too_many(request, wait)
    if form.is_valid():
        try:
            subscription = subscriptions.subscription_request(
                shipment=shipment,
                channel=form.cleaned_data["channel"],
                address=form.cleaned_data["address"],
                language=get_language() or "",
            )
        except SubscriptionError as exc:
            form.add_error(exc.field, exc.message)
        else:
            return redirect(
                "public-subscribe-confirm",
                token=token,
                ref=links.confirm_ref(token, subscription.pk),
            )
    return public_page(request, "public/subscribe.html", context, status=400)


@never_cache
@GET_POST
def subscribe_confirm(request: HttpRequest, token: str, ref: str) -> HttpResponse:
    shipment = _public_shipment(token)
    pk = links.confirm_subscription_id(token, ref)
    subscription = (
        Subscription.objects.filter(pk=pk, shipment=shipment).first()
        if shipment is not None and pk is not None
        else None
    )
    if shipment is None or subscription is None:
        return public_not_found(request)
    here = reverse("public-subscribe-confirm", args=[token, ref])
    pending = subscription.confirmed_at is None and subscription.stopped_at is None
    form = SubscriptionCodeForm(initial={"code": request.GET.get("code", "")[:20]})
    error, status = "", 200
    if request.method == "POST":
        if not pending:
            # Confirmed or stopped meanwhile: the page says which.
            return redirect(here)
        if wait := over_limit(
            request, group="public-subscribe", rate=settings.TRACKSOP_PUBLIC_POST_RATE
        ):
            return too_many(request, wait)
        try:
            if "resend" in request.POST:
                subscriptions.subscription_request(
                    shipment=shipment,
                    channel=subscription.channel,
                    address=subscription.address,
                    language=get_language() or "",
                )
                return redirect(f"{here}?sent=1")
            form = SubscriptionCodeForm(request.POST)
            if form.is_valid():
                subscriptions.subscription_confirm(
                    subscription=subscription, code=form.cleaned_data["code"]
                )
                return redirect(here)
        except SubscriptionError as exc:
            if exc.field == "code":
                form.add_error("code", exc.message)
            else:
                error = str(exc.message)
        status = 400
    return public_page(
        request,
        "public/subscribe_confirm.html",
        {
            "form": form,
            "error": error,
            "pending": pending,
            "active": subscription.is_active,
            "sent": request.GET.get("sent") == "1" and pending,
            "masked": subscriptions.mask_address(
                subscription.channel, subscription.address
            ),
            "minutes": int(subscriptions.CODE_TTL.total_seconds() // 60),
            "token": token,
            "tracking_url": links.tracking_url(token),
        },
        status=status,
    )


def _stop_target(token: str, code: str) -> Subscription | None:
    """The subscription a stop link was made for; None for a forged one."""
    pk = links.stop_subscription_id(token, code)
    if pk is None:
        return None
    return Subscription.objects.filter(pk=pk, shipment__public_token=token).first()


@never_cache
@GET_POST
def stop(request: HttpRequest, token: str, code: str) -> HttpResponse:
    """The link in every message to a subscriber: a GET asks, a POST stops."""
    subscription = _stop_target(token, code)
    if subscription is None:
        return public_not_found(request)
    if request.method == "POST":
        subscriptions.subscription_stop(subscription=subscription)
        return redirect("public-subscription-stop", token=token, code=code)
    return public_page(
        request,
        "public/stop.html",
        {
            "stopped": subscription.stopped_at is not None,
            "masked": subscriptions.mask_address(
                subscription.channel, subscription.address
            ),
            "token": token,
            "tracking_url": links.tracking_url(token),
        },
    )


# RFC 8058, as for `unsubscribe`: the signed code in the URL is the authority.
@csrf_exempt
@never_cache
@GET_POST
def stop_one_click(request: HttpRequest, token: str, code: str) -> HttpResponse:
    subscription = _stop_target(token, code)
    if subscription is None:
        return public_not_found(request)
    if request.method == "GET":
        # Link scanners fetch URLs in mail: a GET never stops anything.
        return redirect("public-subscription-stop", token=token, code=code)
    subscriptions.subscription_stop(subscription=subscription)
    return HttpResponse(_("You will get no more updates about this package."))
