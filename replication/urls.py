"""UI routes of replication."""

urlpatterns: list = []
