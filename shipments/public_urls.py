"""Public routes. Listed before the notifications' /t/<token>/<code>/ route,
which would otherwise take /t/<token>/feedback/ for a manage code."""

from django.urls import path

from shipments import public_views

urlpatterns = [
    path("track/", public_views.lookup, name="public-lookup"),
    path("t/<str:token>/", public_views.tracking, name="public-tracking"),
    path("t/<str:token>/feedback/", public_views.feedback, name="public-feedback"),
]
