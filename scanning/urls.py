"""UI routes of scanning."""

urlpatterns: list = []
