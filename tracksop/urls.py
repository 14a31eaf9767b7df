from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from notifications.urls import public_urlpatterns as notification_public
from shipments.public_urls import urlpatterns as shipment_public
from tracksop import views
from tracksop.forms import QueuedPasswordResetForm

# The integration API: each app mounts its own `api.py` here.
api_v1: list[URLPattern | URLResolver] = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/",
        # Swagger UI sets inline styles from its script; only this page may.
        csp_override(
            {**settings.SECURE_CSP, "style-src": [CSP.SELF, CSP.UNSAFE_INLINE]}
        )(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("", include("shipments.api")),
    path("", include("shipments.carrier_webhooks")),
    path("", include("notifications.api")),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("", views.dashboard, name="dashboard"),
    path("me/", views.preferences, name="preferences"),
    path(
        "accounts/password_reset/",
        auth_views.PasswordResetView.as_view(form_class=QueuedPasswordResetForm),
        name="password_reset",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("shipments/", include("shipments.urls")),
    path("notifications/", include("notifications.urls")),
    path("exceptions/", include("exceptions_mgmt.urls")),
    path("reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
    *shipment_public,
    *notification_public,
]

handler400 = "tracksop.http.bad_request"
handler404 = "tracksop.http.public_not_found"
