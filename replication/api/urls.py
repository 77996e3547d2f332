"""Routes of the replication API under /api/v1/ (the wiring adds `router`'s routes after every app's paths)."""

from rest_framework.routers import SimpleRouter

router = SimpleRouter(trailing_slash=False)
urlpatterns: list = []
