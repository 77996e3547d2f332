"""Routes of the core's REST API under /api/v1/ (the wiring adds `router`'s routes after every app's paths)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from portal.core.api import views

router = SimpleRouter(trailing_slash=False)
router.register("users", views.UserViewSet, basename="user")
router.register("groups", views.GroupViewSet, basename="group")
router.register("audit-logs", views.AuditEventViewSet, basename="auditevent")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("jobs", views.JobViewSet, basename="job")
router.register("credentials", views.CredentialViewSet, basename="credential")
router.register("certificates", views.CertificateViewSet, basename="certificate")

urlpatterns = [
    path("systeminfo", views.systeminfo, name="systeminfo"),
    path("systeminfo/ca", views.systeminfo_ca, name="systeminfo-ca"),
    path("settings", views.SettingsView.as_view(), name="settings"),
    path("identities", views.IdentityView.as_view(), name="identities"),
    path("login-lockouts", views.LoginLockoutView.as_view(), name="login-lockouts"),
    path("login-lockouts/unlock", views.unlock_logins, name="login-lockouts-unlock"),
]
