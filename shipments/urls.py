from django.urls import path

from shipments import access_views, desk_views, views

urlpatterns = [
    path("search/", views.search, name="shipment-search"),
    path("new/", views.shipment_create, name="shipment-create"),
    path("scan/", views.bulk_scan, name="bulk-scan"),
    path("monitor/", views.monitor, name="monitor"),
    path("inquiries/", desk_views.inquiry_list, name="inquiry-list"),
    path("<str:code>/", desk_views.shipment_detail, name="shipment-detail"),
    path("<str:code>/access/", access_views.shipment_access, name="shipment-access"),
    path("<str:code>/edit/", views.shipment_edit, name="shipment-edit"),
    path("<str:code>/check/", views.shipment_check, name="shipment-check"),
    path("<str:code>/dispatch/", views.shipment_dispatch, name="shipment-dispatch"),
    path("<str:code>/checkpoint/", views.checkpoint_create, name="checkpoint-create"),
    path("<str:code>/eta/", views.shipment_eta, name="shipment-eta"),
    path("<str:code>/cancel/", views.shipment_cancel, name="shipment-cancel"),
    path("<str:code>/sync/", views.shipment_sync_now, name="shipment-sync-now"),
    path("<str:code>/events/<int:event_id>/void/", views.event_void, name="event-void"),
    path("<str:code>/inquiries/new/", desk_views.inquiry_create, name="inquiry-create"),
    path(
        "<str:code>/inquiries/<int:pk>/answer/",
        desk_views.inquiry_answer,
        name="inquiry-answer",
    ),
]
