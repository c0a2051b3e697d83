"""Pages travel gzipped to browsers that accept it; what is not a page (API answers) is left as it is."""

import gzip
import re

import pytest
from django.urls import reverse

from tests.factories import ProjectFactory, RunFactory

pytestmark = pytest.mark.django_db

GZIP = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}


def test_it_gzips_pages_for_browsers_that_accept_it(client, users):
    RunFactory(project=ProjectFactory(slug="shop", name="Shop"))
    client.force_login(users.developer)
    response = client.get(reverse("project-detail", args=["shop"]), **GZIP)
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip" and "Accept-Encoding" in response["Vary"]
    page = gzip.decompress(response.content).decode()
    assert '<html lang="en">' in page and "<h1>Shop</h1>" in page
    assert len(response.content) < len(page.encode()) / 2


def test_it_sends_pages_plain_to_clients_that_do_not_accept_gzip(client, users):
    client.force_login(users.developer)
    response = client.get(reverse("home"))
    assert "Content-Encoding" not in response and b"<h1>" in response.content


def test_the_csrf_token_differs_in_every_page_so_compression_cannot_reveal_it(client):
    """BREACH needs a secret that stays the same across many compressed answers: Django masks the token anew."""

    def token() -> str:
        page = gzip.decompress(client.get(reverse("login"), **GZIP).content).decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    assert token() != token()


def test_api_answers_are_not_compressed(client):
    response = client.get(reverse("api-schema"), **GZIP)
    assert response.status_code == 200 and len(response.content) > 1000
    assert "Content-Encoding" not in response
