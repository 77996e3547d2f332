"""Routes of the administration UI."""

from django.urls import path

from portal.core import views

urlpatterns = [
    # Browsers and tools ask for /favicon.ico on their own, whatever the page links.
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("identities/", views.identities, name="identities"),
    path("identities/action/", views.identity_action, name="identity-action"),
    path("identities/users/new/", views.user_create, name="user-create"),
    path("identities/users/edit/", views.user_edit, name="user-edit"),
    path("identities/users/password/", views.user_password_reset, name="user-password-reset"),
    path("identities/edit/", views.identity_edit, name="identity-edit"),
    path("identities/groups/new/", views.group_create, name="group-create"),
    path("identities/groups/edit/", views.group_edit, name="group-edit"),
    path("identities/credentials/", views.credential_list, name="credentials"),
    path("identities/credentials/new/", views.credential_create, name="credential-create"),
    path("identities/credentials/<str:name>/edit/", views.credential_edit, name="credential-edit"),
    path("identities/credentials/<str:name>/delete/", views.credential_delete, name="credential-delete"),
    path("identities/certificates/", views.certificate_list, name="certificates"),
    path("identities/certificates/new/", views.certificate_add, name="certificate-add"),
    path("identities/certificates/trust/", views.certificate_trust, name="certificate-trust"),
    path("identities/certificates/<int:pk>/delete/", views.certificate_delete, name="certificate-delete"),
    path("configuration/", views.configuration, name="configuration"),
    path("configuration/sync/", views.directory_sync, name="directory-sync"),
    path("configuration/jobs/<int:job_id>/row/", views.job_row, name="job-row"),
    path("configuration/jobs/<int:job_id>/", views.job_log, name="job-log"),
    path("jobs/<int:job_id>/panel/", views.job_panel, name="job-panel"),
    path("jobs/<int:job_id>/stop/", views.job_stop, name="job-stop"),
    path("logs/", views.logs, name="logs"),
    path("profile/", views.profile, name="profile"),
    path("profile/password/", views.password_change, name="password-change"),
    path("profile/tokens/", views.token_create, name="token-create"),
    path("profile/tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
]
