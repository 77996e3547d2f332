"""Routes of the project pages."""

urlpatterns: list = []
