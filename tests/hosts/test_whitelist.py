"""VCH registry whitelists under content trust: what /info reports, VIC's entry rules, and the verdicts.

The rules mirror VIC 1.4's own (vmware/vic lib/config/dynamic/merger.go, pkg/registry/entry.go): a VCH
takes a content-trust whitelist only when it is no more permissive than the one it was deployed with.
"""

from __future__ import annotations

import pytest

from hosts.whitelist import ReportedWhitelist, Verdict, from_info, judge, parse_entry, portal_registry
from tests.integration.vch_proxy import vic_system_status

PORTAL = "127.0.0.1:8282"


def whitelisted(*registries: str) -> ReportedWhitelist:
    """A VCH in whitelist mode with these entries."""
    return ReportedWhitelist(enabled=True, registries=list(registries))


# What /info says.


def test_info_of_a_vch_without_whitelist_reports_mode_off() -> None:
    reported = from_info({"SystemStatus": vic_system_status(None, [])})

    assert reported == ReportedWhitelist(enabled=False)


def test_info_of_a_vch_in_whitelist_mode_reports_its_registries_and_insecure_ones() -> None:
    status = vic_system_status(["10.0.0.0/8", "*.example.com", "reg.example.com:5000"], ["reg.example.com:5000"])

    reported = from_info({"SystemStatus": status})

    assert reported.enabled is True
    assert reported.registries == ["10.0.0.0/8", "*.example.com", "reg.example.com:5000"]
    assert reported.insecure == ["reg.example.com:5000"]
    assert reported.remote is False


def test_info_marks_a_whitelist_taken_from_a_management_portal() -> None:
    status = [[" Registry Whitelist Mode", "enabled; remote source"], [" Whitelisted Registries", PORTAL]]

    assert from_info({"SystemStatus": status}) == ReportedWhitelist(True, [PORTAL], [], remote=True)


@pytest.mark.parametrize("info", [{}, {"SystemStatus": None}, {"SystemStatus": [["Role", "primary"], ["x"]]}])
def test_info_of_a_docker_host_reports_no_whitelist(info) -> None:
    assert from_info(info) is None


# VIC's entries.


@pytest.mark.parametrize(
    ("entry", "registry", "expected"),
    [
        ("127.0.0.1:8282", "127.0.0.1:8282", True),
        ("127.0.0.1", "127.0.0.1:8282", True),  # no port: every port of the host
        ("127.0.0.1:5000", "127.0.0.1:8282", False),
        ("127.0.0.0/8", "127.0.0.1:8282", True),
        ("10.0.0.0/8", "127.0.0.1:8282", False),
        ("*.example.com", "wharf.example.com:8282", True),
        ("*.example.com", "wharf.example.org:8282", False),
        ("*.example.com:443", "wharf.example.com:8282", False),
        ("wharf.example.com", "WHARF.example.com:8282", True),
        ("http://127.0.0.1:8282", "127.0.0.1:8282", False),  # a scheme admits only that scheme
        ("127.0.0.1:8282/library", "127.0.0.1:8282", False),  # a path admits only below it
    ],
)
def test_entry_contains_registry_as_vic_decides(entry: str, registry: str, expected: bool) -> None:
    assert parse_entry(entry).contains(parse_entry(registry)) is expected


@pytest.mark.parametrize("text", ["", "not a registry:port", "reg.example.com:notaport"])
def test_text_that_is_no_registry_is_no_entry(text: str) -> None:
    assert parse_entry(text) is None


# Verdicts.


def test_vch_with_whitelist_mode_off_needs_the_change() -> None:
    judgment = judge(ReportedWhitelist(enabled=False), PORTAL)

    assert judgment.state == Verdict.CHANGE_NEEDED
    assert judgment.required == [PORTAL]
    assert "more restrictive" in judgment.reason


def test_vch_whitelisting_only_the_portal_registry_is_already_compliant() -> None:
    judgment = judge(whitelisted(PORTAL), PORTAL)

    assert judgment.state == Verdict.COMPLIANT


def test_vch_whitelisting_the_portal_registry_among_others_is_narrowed_to_it() -> None:
    judgment = judge(whitelisted("docker.io", PORTAL), PORTAL)

    assert judgment.state == Verdict.CHANGE_NEEDED
    assert judgment.required == [PORTAL]
    assert "no longer docker.io" in judgment.reason


@pytest.mark.parametrize("entry", ["127.0.0.0/8", "127.0.0.1"])
def test_vch_whose_range_or_host_admits_the_portal_registry_needs_the_change(entry: str) -> None:
    assert judge(whitelisted(entry), PORTAL).state == Verdict.CHANGE_NEEDED


def test_wildcard_domain_that_admits_the_portal_registry_is_narrowed() -> None:
    judgment = judge(whitelisted("*.example.com"), "wharf.example.com:8282")

    assert judgment.state == Verdict.CHANGE_NEEDED


def test_vch_whose_whitelist_does_not_permit_the_portal_registry_refuses() -> None:
    judgment = judge(whitelisted("harbor.corp.example:443", "10.0.0.0/8"), PORTAL)

    assert judgment.state == Verdict.REFUSED
    assert "more permissive" in judgment.reason
    assert "does not permit 127.0.0.1:8282" in judgment.reason


def test_refusal_of_a_list_from_another_portal_says_the_deployed_list_decides() -> None:
    reported = ReportedWhitelist(enabled=True, registries=["other-portal.example:443"], remote=True)

    judgment = judge(reported, PORTAL)

    assert judgment.state == Verdict.REFUSED
    assert "the VCH judges against its deployed list" in judgment.reason


def test_change_that_would_broaden_a_whitelisted_path_is_refused() -> None:
    # The vSphere administrator allowed one project of the registry; the whole registry would be more.
    judgment = judge(whitelisted("127.0.0.1:8282/library"), PORTAL)

    assert judgment.state == Verdict.REFUSED
    assert "would broaden the whitelisted entry 127.0.0.1:8282/library" in judgment.reason


def test_vch_that_has_not_reported_a_whitelist_is_unknown_until_collected() -> None:
    judgment = judge(None, PORTAL)

    assert judgment.state == Verdict.UNKNOWN
    assert "next collection" in judgment.reason


def test_portal_registry_is_the_realm_address_with_its_port(settings) -> None:
    settings.REGISTRY_TOKEN_REALM = "https://Wharf.Example:8282/service/token"
    assert portal_registry() == "wharf.example:8282"
    settings.REGISTRY_TOKEN_REALM = "https://wharf.example/service/token"
    assert portal_registry() == "wharf.example:443"
