"""Unit tests of the registry client through a fake transport: tag lists paged by Link headers, relative and
absolute, and uploads regrouped into chunks (docker-registry 2.8 never pages a tag list)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from registries.client import RegistryClient, _rechunk
from tests.registries.test_external_unit import fake_session


def test_tags_follow_relative_and_absolute_link_headers() -> None:
    pages = {
        "": (200, {"tags": ["a", "b"]}, {"Link": '</v2/app/web/tags/list?last=b&n=2>; rel="next"'}),
        "b": (200, {"tags": ["c", "d"]}, {"Link": '<https://r.example/v2/app/web/tags/list?last=d&n=2>; rel="next"'}),
        "d": (200, {"tags": ["e"]}, {}),
    }

    def tags(request: requests.PreparedRequest) -> tuple[int, dict, dict]:
        query = parse_qs(urlsplit(request.url).query)
        assert query["n"] == ["2"]
        return pages[query.get("last", [""])[0]]

    session, transport = fake_session({("r.example", "/v2/app/web/tags/list"): tags})
    client = RegistryClient("https://r.example", session=session, page_size=2)
    assert client.tags("app/web") == ["a", "b", "c", "d", "e"]
    assert len(transport.seen) == 3


def test_pieces_of_any_size_are_regrouped_into_chunks() -> None:
    pieces = [b"x" * 3, b"y" * 10, b"", b"z" * 4]
    assert [len(chunk) for chunk in _rechunk(iter(pieces), 5)] == [5, 5, 5, 2]
    assert b"".join(_rechunk(iter(pieces), 5)) == b"".join(pieces)
