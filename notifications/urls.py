from django.urls import path

from notifications import views

urlpatterns = [
    path("failed/", views.failed_list, name="notification-failed"),
    path("templates/preview/", views.template_preview, name="template-preview"),
    path(
        "templates/preview/html/",
        views.template_preview_html,
        name="template-preview-html",
    ),
    path("<int:pk>/resend/", views.resend, name="notification-resend"),
]

# Public: the link in every message (no login). Under /t/<token>/ so that the
# tracking page and its management live at one address.
public_urlpatterns = [
    # Before the manage route, which would take /t/<token>/subscribe/ for a
    # manage code.
    path("t/<str:token>/subscribe/", views.subscribe, name="public-subscribe"),
    path(
        "t/<str:token>/subscribe/<str:ref>/",
        views.subscribe_confirm,
        name="public-subscribe-confirm",
    ),
    path("t/<str:token>/stop/<str:code>/", views.stop, name="public-subscription-stop"),
    path(
        "t/<str:token>/stop/<str:code>/one-click/",
        views.stop_one_click,
        name="public-subscription-unsubscribe",
    ),
    path("t/<str:token>/<str:code>/", views.manage, name="notification-manage"),
    path(
        "t/<str:token>/<str:code>/unsubscribe/",
        views.unsubscribe,
        name="notification-unsubscribe",
    ),
]
