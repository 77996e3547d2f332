"""Users, groups, the admin role, passwords and API tokens through the API."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.core.models import ApiToken, AuditEvent, Group, User
from tests.conftest import PASSWORD, basic, client_for


def test_admin_creates_a_local_user_who_can_log_in(api) -> None:
    body = {"username": "alice", "password": "Harbour-lights-7", "email": "alice@example.test", "first_name": "Alice"}
    response = api.post("/api/v1/users", body, format="json")
    assert response.status_code == 201, response.content
    assert "password" not in response.json()
    alice = client_for(None)
    alice.credentials(HTTP_AUTHORIZATION=basic("alice", "Harbour-lights-7"))
    assert alice.get("/api/v1/projects").status_code == 200


def test_weak_password_gets_the_validators_message(api) -> None:
    response = api.post("/api/v1/users", {"username": "bob", "password": "123"}, format="json")
    assert response.status_code == 400
    assert "too short" in response.json()["detail"]
    assert not User.objects.filter(username="bob").exists()


def test_duplicate_user_is_409(api, make_user) -> None:
    make_user("carol")
    response = api.post("/api/v1/users", {"username": "Carol", "password": "Harbour-lights-7"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "user 'Carol' already exists"


def test_disabled_user_cannot_log_in(api, make_user) -> None:
    make_user("dave")
    assert api.patch("/api/v1/users/dave", {"is_active": False}, format="json").status_code == 200
    assert client_for(User.objects.get(username="dave")).get("/api/v1/projects").status_code == 401


def test_admin_cannot_disable_or_delete_themselves(api, portal_admin) -> None:
    assert api.patch(f"/api/v1/users/{portal_admin.username}", {"is_active": False}, format="json").status_code == 400
    assert api.delete(f"/api/v1/users/{portal_admin.username}").status_code == 400


def test_user_changes_own_password(make_user) -> None:
    user = make_user("erin")
    client = client_for(user)
    wrong = client.put("/api/v1/users/erin/password", {"old_password": "nope", "new_password": "Sea-breeze-99"})
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {"old_password": ["The current password is wrong."]}
    ok = client.put("/api/v1/users/erin/password", {"old_password": PASSWORD, "new_password": "Sea-breeze-99"})
    assert ok.status_code == 204
    fresh = client_for(None)
    fresh.credentials(HTTP_AUTHORIZATION=basic("erin", "Sea-breeze-99"))
    assert fresh.get("/api/v1/projects").status_code == 200


def test_user_cannot_change_someone_elses_password(make_user) -> None:
    make_user("frank")
    client = client_for(make_user("grace"))
    response = client.put("/api/v1/users/frank/password", {"old_password": PASSWORD, "new_password": "Sea-breeze-99"})
    assert response.status_code == 403


def test_group_admin_role_is_carried_to_members(api, make_user) -> None:
    member = make_user("hank")
    ops = Group.objects.create(name="ops")
    ops.members.add(member)
    client = client_for(member)
    assert client.post("/api/v1/projects", {"name": "by-hank"}, format="json").status_code == 403
    assert api.put("/api/v1/groups/ops/admin").status_code == 204
    assert client_for(member).post("/api/v1/projects", {"name": "by-hank"}, format="json").status_code == 201
    assert api.delete("/api/v1/groups/ops/admin").status_code == 204
    assert client_for(member).post("/api/v1/projects", {"name": "by-hank-2"}, format="json").status_code == 403


def test_user_admin_role_assign_and_unassign(api, make_user) -> None:
    make_user("ivy")
    assert api.put("/api/v1/users/ivy/admin").status_code == 204
    assert User.objects.get(username="ivy").is_portal_admin
    assert api.delete("/api/v1/users/ivy/admin").status_code == 204
    assert not User.objects.get(username="ivy").is_portal_admin
    assert api.put("/api/v1/users/nobody/admin").status_code == 404


def test_identity_search_matches_name_full_name_email_and_group(api, make_user) -> None:
    make_user("jack", first_name="Jack", last_name="Tar", email="jt@sea.test")
    crew = Group.objects.create(name="deckhands")
    crew.members.add(User.objects.get(username="jack"))
    for query in ("jac", "Tar", "sea.test", "deckhands"):
        names = [(r["kind"], r["name"]) for r in api.get(f"/api/v1/identities?q={query}").json()["results"]]
        assert ("user", "jack") in names, query
    names = [(r["kind"], r["name"]) for r in api.get("/api/v1/identities?q=deck").json()["results"]]
    assert ("group", "deckhands") in names


def test_api_token_is_shown_once_and_authenticates(make_user) -> None:
    user = make_user("kim")
    created = client_for(user).post("/api/v1/tokens", {"name": "ci"}, format="json")
    assert created.status_code == 201
    key = created.json()["token"]
    assert key.startswith("wharf_")
    listed = client_for(user).get("/api/v1/tokens").json()["results"]
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
    assert key not in str(ApiToken.objects.values_list())
    bearer = client_for(None)
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert bearer.get("/api/v1/projects").status_code == 200
    assert client_for(user).delete(f"/api/v1/tokens/{listed[0]['id']}").status_code == 204
    assert bearer.get("/api/v1/projects").status_code == 401


def test_expired_or_bogus_token_is_401(make_user) -> None:
    user = make_user("lee")
    created = client_for(user).post("/api/v1/tokens", {"name": "short"}, format="json").json()
    ApiToken.objects.filter(pk=created["id"]).update(expires=timezone.now() - timedelta(seconds=1))
    for key in (created["token"], "wharf_not-a-token", "garbage"):
        client = client_for(None)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        response = client.get("/api/v1/projects")
        assert response.status_code == 401, key
        assert response.json()["detail"] == "Invalid, expired or revoked API token."


def test_token_expiry_in_the_past_and_duplicate_names_are_refused(make_user) -> None:
    client = client_for(make_user("max"))
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert client.post("/api/v1/tokens", {"name": "old", "expires": past}, format="json").status_code == 400
    assert client.post("/api/v1/tokens", {"name": "ci"}, format="json").status_code == 201
    assert client.post("/api/v1/tokens", {"name": "ci"}, format="json").status_code == 409


def test_users_cannot_see_other_users_tokens(make_user) -> None:
    owner = make_user("nina")
    token_id = client_for(owner).post("/api/v1/tokens", {"name": "mine"}, format="json").json()["id"]
    assert client_for(make_user("oscar")).delete(f"/api/v1/tokens/{token_id}").status_code == 404


def test_failed_basic_login_is_audited_without_the_password(make_user) -> None:
    make_user("pat")
    client = client_for(None)
    client.credentials(HTTP_AUTHORIZATION=basic("pat", "wrong-secret-123"), REMOTE_ADDR="127.0.0.9")
    assert client.get("/api/v1/projects").status_code == 401
    event = AuditEvent.objects.get(action="login", outcome="failure")
    assert (event.username, event.client_address) == ("pat", "127.0.0.9")
    assert "wrong-secret-123" not in str(event.detail)


def test_users_see_the_jobs_they_started_and_admins_see_all(api, make_user) -> None:
    from portal.core.models import Job

    dev = make_user("dev")
    mine = Job.objects.create(kind="provision container", target="alpha/web", created_by="dev")
    theirs = Job.objects.create(kind="garbage collection", target="registry", created_by="admin")
    dev_api = client_for(dev)
    assert [job["id"] for job in dev_api.get("/api/v1/jobs").json()["results"]] == [mine.pk]
    assert dev_api.get(f"/api/v1/jobs/{mine.pk}").json()["kind"] == "provision container"
    assert dev_api.get(f"/api/v1/jobs/{theirs.pk}").status_code == 404
    assert {job["id"] for job in api.get("/api/v1/jobs").json()["results"]} == {mine.pk, theirs.pk}


def _emails_and_projects(rows: list[dict]) -> dict[str, tuple[str, list[str]]]:
    return {
        row.get("username", row.get("name")): (row["email"], [p["project"] for p in row["projects"]]) for row in rows
    }


def test_project_admin_reads_no_email_or_role_outside_their_projects(role_users, alpha, beta) -> None:
    from projects.models import Membership, Role

    beta_admin = role_users["other_project_admin"]
    beta_admin.email, role_users["viewer"].email = "b-admin@example.test", "a-view@example.test"
    beta_admin.save(), role_users["viewer"].save()
    Membership.objects.create(project=beta, user=role_users["viewer"], role=Role.VIEWER)
    alpha_admin = client_for(role_users["project_admin"])
    user = alpha_admin.get("/api/v1/users/beta-admin").json()
    assert (user["email"], user["projects"]) == ("", [])
    users = _emails_and_projects(alpha_admin.get("/api/v1/users").json()["results"])
    found = _emails_and_projects(alpha_admin.get("/api/v1/identities", {"q": "a"}).json()["results"])
    roles = alpha_admin.get("/api/v1/users/beta-admin/projects").json()
    # Members of alpha are theirs to manage: their email, and their roles only where alpha's admin can look.
    assert users["alpha-viewer"] == found["alpha-viewer"] == ("a-view@example.test", ["alpha"])
    assert users["beta-admin"] == found["beta-admin"] == ("", [])
    assert roles == []
    # A portal admin reads everything.
    everything = _emails_and_projects(client_for(role_users["portal_admin"]).get("/api/v1/users").json()["results"])
    assert everything["alpha-viewer"] == ("a-view@example.test", ["alpha", "beta"])
    assert everything["beta-admin"] == ("b-admin@example.test", ["beta"])


def test_identity_search_sorts_as_the_page_does(api, make_user) -> None:
    make_user("carol")
    make_user("bert")
    Group.objects.create(name="devs")
    names = [r["name"] for r in api.get("/api/v1/identities", {"sort": "-type"}).json()["results"]]
    assert names == ["root-admin", "carol", "bert", "devs"]  # users before groups, each by name descending
    refused = api.get("/api/v1/identities", {"sort": "size"})
    assert refused.status_code == 400 and "sort" in refused.json()["errors"]
