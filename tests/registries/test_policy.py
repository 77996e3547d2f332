"""The one run policy: content trust and vulnerability rules refuse with a reason while no signature or scan exists."""

from __future__ import annotations

from projects.models import Project
from projects.policy import check


def test_project_without_rules_allows_everything(alpha: Project) -> None:
    assert check(alpha, "alpha/app", "1.0").allowed


def test_content_trust_refuses_unsigned_images(alpha: Project) -> None:
    alpha.content_trust = True
    verdict = check(alpha, "alpha/app", "1.0")
    assert (verdict.allowed, verdict.reason) == (False, "image not signed")


def test_preventing_vulnerable_images_refuses_unscanned_ones(alpha: Project) -> None:
    alpha.prevent_vulnerable = True
    verdict = check(alpha, "alpha/app", "sha256:" + "0" * 64)
    assert (verdict.allowed, verdict.reason) == (False, "image not scanned yet")
