"""API routes for containers under /api/v1/projects/{name}/containers."""

urlpatterns: list = []
