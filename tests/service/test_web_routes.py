"""The app serves its web pages and their assets itself, with a strict CSP, outside the API."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from service.web import OPERATOR_PAGES, PAGES


@pytest.mark.parametrize("page", sorted([*PAGES, *OPERATOR_PAGES]))
def test_every_page_is_served_with_a_content_security_policy(client: TestClient, page: str) -> None:
    response = client.get(f"/ui/{page}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy


def test_every_script_and_stylesheet_a_page_names_is_served_from_the_app(
    client: TestClient,
) -> None:
    for name in [*PAGES, *OPERATOR_PAGES]:
        html = client.get(f"/ui/{name}").text
        assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html)
        assert assets, name
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
        assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', html)), name


def test_an_unknown_page_is_404_and_pages_stay_out_of_the_api_schema(
    client: TestClient,
) -> None:
    missing = client.get("/ui/nope")
    assert missing.status_code == 404 and missing.json()["field"] == "page"
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/ui")]
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
