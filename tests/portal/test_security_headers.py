"""HSTS over HTTPS only, and a Content-Security-Policy without inline script or style on every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.conftest import logged_in


def test_hsts_is_sent_over_https_only(db) -> None:
    assert Client().get("/login/", secure=True)["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in Client().get("/login/")


def test_hsts_behind_a_proxy_follows_the_proxys_word(db, settings) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert "Strict-Transport-Security" in Client().get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert "Strict-Transport-Security" not in Client().get("/login/", HTTP_X_FORWARDED_PROTO="http")


def test_pages_and_api_carry_a_policy_without_inline_script_or_style(client, portal_admin) -> None:
    for path in ("/login/", "/api/v1/systeminfo", "/api/v1/docs/"):
        policy = logged_in(client, portal_admin).get(path)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
        assert "unsafe" not in policy


def test_pages_hold_no_inline_script_style_or_handler(client, portal_admin) -> None:
    for path in ("/", "/identities/", "/identities/certificates/", "/configuration/", "/api/v1/docs/"):
        response = logged_in(client, portal_admin).get(path, follow=True)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"{path} has an inline script"
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|\shx-on", html), f"{path} has inline style or handlers"


TEMPLATES = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(settings.BASE_DIR)))
def test_no_template_needs_inline_script_style_or_eval(template: Path) -> None:
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>: move it to static/wharf/wharf.js"
    assert not re.search(r"<style|\sstyle=", html), "inline style: use a class in static/wharf/wharf.css"
    assert not re.search(r"\son[a-z]+=|\shx-on", html), "inline handler: listen in static/wharf/wharf.js"
    # htmx evaluates trigger filters (every 3s [...]) and js: values with eval, which the policy refuses.
    assert not re.search(r'hx-trigger="[^"]*\[|hx-vals=.js:|hx-vars', html), "htmx eval: use wharf.js"
