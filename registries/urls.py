"""Routes of the registry's front door: the Docker token service, the /v2/ proxy and the event receiver."""

from django.urls import path, re_path

from registries import views, views_events

urlpatterns = [
    path("service/token", views.token, name="registry-token"),
    path("service/notifications", views_events.notifications, name="registry-notifications"),
    re_path(r"^v2/(?P<path>.*)\Z", views.registry_v2, name="registry-v2"),
]
