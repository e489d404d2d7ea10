"""The OAuth2 authorization-code flow with requests, as a browser and a web app would run
it: sign-in form, redirect with code and state, token exchange, refresh, and GitLab's
errors for a wrong secret, a reused code and bad credentials."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

CALLBACK = "http://booklab.localhost/login/gitlab/authorized"


class FormReader(HTMLParser):
    """The sign-in form's inputs (name -> value) and its submit button's label."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.button = ""
        self._in_button = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "input":
            self.fields[attributes["name"]] = attributes.get("value") or ""
        self._in_button = tag == "button"

    def handle_endtag(self, tag: str) -> None:
        self._in_button = False

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.button += data


def sign_in(gitlab, client_id: str, login: str, password: str, state: str = "xyz") -> requests.Response:
    """Open the authorize page, fill the form as a user would and post it (no redirects)."""
    with requests.Session() as browser:
        page = browser.get(
            f"{gitlab.url}/oauth/authorize",
            timeout=10,
            params={
                "client_id": client_id,
                "redirect_uri": CALLBACK,
                "response_type": "code",
                "state": state,
                "scope": "api",
            },
        )
        assert page.status_code == 200
        form = FormReader()
        form.feed(page.text)
        assert form.button == "Sign in"
        return browser.post(
            f"{gitlab.url}/oauth/authorize",
            timeout=10,
            allow_redirects=False,
            data={**form.fields, "username": login, "password": password},
        )


def code_from(response: requests.Response, state: str = "xyz") -> str:
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    query = parse_qs(location.query)
    assert query["state"] == [state]
    return query["code"][0]


def exchange(gitlab, **fields: str) -> requests.Response:
    return requests.post(f"{gitlab.url}/oauth/token", data=fields, timeout=10)


def test_code_flow_gives_a_token_for_the_api(gitlab):
    alice = gitlab.add_user("alice")
    client_id, secret = gitlab.add_oauth_app(CALLBACK)
    code = code_from(sign_in(gitlab, client_id, "alice", alice.password))

    response = exchange(
        gitlab,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        client_id=client_id,
        client_secret=secret,
    )
    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 7200 and token["scope"] == "api"
    assert isinstance(token["created_at"], int) and token["refresh_token"]
    me = requests.get(
        f"{gitlab.url}/api/v4/user", timeout=10, headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert me.json()["username"] == "alice"

    reused = exchange(
        gitlab,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        client_id=client_id,
        client_secret=secret,
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"


def test_basic_client_auth_and_refresh(gitlab):
    bob = gitlab.add_user("bob", email="bob@example.org")
    client_id, secret = gitlab.add_oauth_app([CALLBACK, "http://other/cb"])
    code = code_from(sign_in(gitlab, client_id, "bob@example.org", bob.password))
    first = requests.post(
        f"{gitlab.url}/oauth/token",
        auth=(client_id, secret),
        timeout=10,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK},
    ).json()

    second = requests.post(
        f"{gitlab.url}/oauth/token",
        auth=(client_id, secret),
        timeout=10,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert second.status_code == 200
    renewed = second.json()["access_token"]
    assert renewed != first["access_token"]
    for access_token, status in ((renewed, 200), (first["access_token"], 401)):
        me = requests.get(f"{gitlab.url}/api/v4/user", headers={"Authorization": f"Bearer {access_token}"}, timeout=10)
        assert me.status_code == status
    again = requests.post(
        f"{gitlab.url}/oauth/token",
        auth=(client_id, secret),
        timeout=10,
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(gitlab):
    alice = gitlab.add_user("alice")
    client_id, _ = gitlab.add_oauth_app(CALLBACK)
    code = code_from(sign_in(gitlab, client_id, "alice", alice.password))
    response = exchange(
        gitlab,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CALLBACK,
        client_id=client_id,
        client_secret="not-the-secret",
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client" and response.json()["error_description"]


@pytest.mark.parametrize("field, value", [("redirect_uri", "http://other/cb"), ("grant_type", "password")])
def test_code_exchange_refusals(gitlab, field, value):
    alice = gitlab.add_user("alice")
    client_id, secret = gitlab.add_oauth_app(CALLBACK)
    code = code_from(sign_in(gitlab, client_id, "alice", alice.password))
    fields = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": client_id,
        "client_secret": secret,
        field: value,
    }
    response = exchange(gitlab, **fields)
    assert response.status_code == 400
    assert response.json()["error"] == {"redirect_uri": "invalid_grant", "grant_type": "unsupported_grant_type"}[field]


def test_wrong_password_shows_the_form_again(gitlab):
    gitlab.add_user("alice")
    client_id, _ = gitlab.add_oauth_app(CALLBACK)
    response = sign_in(gitlab, client_id, "alice", "guess")
    assert response.status_code == 200
    assert "Invalid login or password." in response.text and 'name="password"' in response.text


def test_unregistered_redirect_uri_is_refused(gitlab):
    client_id, _ = gitlab.add_oauth_app(CALLBACK)
    response = requests.get(
        f"{gitlab.url}/oauth/authorize",
        timeout=10,
        allow_redirects=False,
        params={"client_id": client_id, "redirect_uri": "http://evil.example/cb", "response_type": "code"},
    )
    assert response.status_code == 400 and "redirect URI" in response.text
