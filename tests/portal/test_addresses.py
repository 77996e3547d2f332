"""The one URL parser: default schemes and ports, IPv6, the "host:port" pins are kept under, and its refusals."""

from __future__ import annotations

import pytest

from portal.core.addresses import AddressError, address_of, host_of, parse_url, pin_address


@pytest.mark.parametrize(
    ("text", "scheme", "host", "port", "path"),
    [
        ("Registry.Example", "https", "registry.example", 443, ""),
        ("http://r.example/ns/", "http", "r.example", 80, "/ns/"),
        ("https://r.example:5443", "https", "r.example", 5443, ""),
        ("[::1]:5000", "https", "::1", 5000, ""),
        ("http://[2001:DB8::1]", "http", "2001:db8::1", 80, ""),
    ],
)
def test_url_is_split_with_default_scheme_and_port(text: str, scheme: str, host: str, port: int, path: str) -> None:
    url = parse_url(text)
    assert (url.scheme, url.host, url.port, url.path) == (scheme, host, port, path)


def test_base_url_leaves_out_the_default_port_and_origin_keeps_it() -> None:
    assert parse_url("https://r.example:443/ns").base_url == "https://r.example"
    assert parse_url("http://[::1]:5000").base_url == "http://[::1]:5000"
    assert parse_url("https://[::1]").origin == "https://[::1]:443"


def test_pins_are_kept_under_host_and_port() -> None:
    assert pin_address("https://R.example") == "r.example:443"
    assert pin_address("http://r.example") == "r.example:80"
    assert pin_address("[::1]:8443") == "[::1]:8443"
    assert address_of("::1", 443) == "[::1]:443" and host_of("[::1]:443") == "::1"
    assert host_of("r.example:443") == "r.example"


def test_docker_ports_apply_when_the_caller_says_so() -> None:
    ports = {"https": 2376, "http": 2375}
    assert parse_url("http://d.example", default_scheme=None, default_ports=ports).origin == "http://d.example:2375"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://[::1", "malformed"),
        ("ftp://r.example", "scheme"),
        ("https://:443", "host"),
        ("https://r.example:port", "port"),
        ("https://r.example:99999", "port"),
        ("not a url", "host"),
        ("https://reg istry.example", "host"),
    ],
)
def test_what_is_wrong_is_named(text: str, problem: str) -> None:
    with pytest.raises(AddressError) as refused:
        parse_url(text)
    assert refused.value.problem == problem


def test_a_scheme_can_be_required() -> None:
    with pytest.raises(AddressError, match="has no scheme: use https://host:443"):
        parse_url("r.example", default_scheme=None)
