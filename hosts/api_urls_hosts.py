"""API routes for container hosts under /api/v1/projects/{name}/hosts."""

urlpatterns: list = []
