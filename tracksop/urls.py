from django.contrib import admin
from django.urls import include, path

from tracksop import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("me/", views.preferences, name="preferences"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("shipments/", include("shipments.urls")),
    path("admin/", admin.site.urls),
]
