"""The one run policy: content trust and vulnerability rules refuse with a reason while no signature or scan exists
(signed images: tests/integration/test_content_trust.py)."""

from __future__ import annotations

from projects.models import Project
from projects.policy import check


def test_project_without_rules_allows_everything(alpha: Project) -> None:
    assert check(alpha, "alpha/app", "1.0").allowed


def test_content_trust_refuses_an_image_nobody_signed(alpha: Project) -> None:
    alpha.content_trust = True
    verdict = check(alpha, "alpha/app", "1.0", digest="sha256:" + "1" * 64)
    assert not verdict.allowed
    assert verdict.reason.startswith("image not signed: no trust data"), verdict.reason


def test_content_trust_refuses_when_the_registry_cannot_say_what_a_tag_is(alpha: Project, settings: object) -> None:
    settings.REGISTRY_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    alpha.content_trust = True
    verdict = check(alpha, "alpha/app", "1.0")
    assert not verdict.allowed
    assert verdict.reason.startswith("image not signed: the registry could not be asked"), verdict.reason


def test_preventing_vulnerable_images_refuses_unscanned_ones(alpha: Project) -> None:
    alpha.prevent_vulnerable = True
    verdict = check(alpha, "alpha/app", "sha256:" + "0" * 64)
    assert (verdict.allowed, verdict.reason) == (False, "image not scanned yet")
