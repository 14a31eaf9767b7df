from __future__ import annotations

from django.urls import path

from reports import views

urlpatterns = [
    path("", views.report_list, name="report-list"),
    path("<int:pk>/", views.report_detail, name="report-detail"),
    path("<int:pk>/<str:kind>/", views.report_file, name="report-file"),
]
