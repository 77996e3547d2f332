"""UI routes of the hosts app: container hosts, containers, provisioning."""

urlpatterns: list = []
