from django.urls import path

from exceptions_mgmt import views

urlpatterns = [
    path("", views.queue, name="exception-queue"),
    path("scan/", views.scan, name="exception-scan"),
    path("report/<str:code>/", views.report, name="exception-report"),
    path("<int:pk>/", views.detail, name="exception-detail"),
    path("<int:pk>/assign/", views.assign, name="exception-assign"),
    path("<int:pk>/note/", views.note_add, name="exception-note"),
    path("<int:pk>/reschedule/", views.reschedule, name="exception-reschedule"),
    path("<int:pk>/resolve/", views.resolve, name="exception-resolve"),
]
