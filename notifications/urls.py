from django.urls import path

from notifications import views

urlpatterns = [
    path("failed/", views.failed_list, name="notification-failed"),
    path("templates/preview/", views.template_preview, name="template-preview"),
    path("<int:pk>/resend/", views.resend, name="notification-resend"),
]

# Public: the link in every message (no login). Under /t/<token>/ so that the
# tracking page and its management live at one address.
public_urlpatterns = [
    path("t/<str:token>/<str:code>/", views.manage, name="notification-manage"),
    path(
        "t/<str:token>/<str:code>/unsubscribe/",
        views.unsubscribe,
        name="notification-unsubscribe",
    ),
]
