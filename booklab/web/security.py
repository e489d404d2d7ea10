"""Security headers on every response of the web tier: pages, the JSON API, event
streams, error pages, redirects and static files.

A WSGI middleware sets them, not ``after_request``, so that they also reach the answers
Flask makes when its own error handling fails. A header that a view set itself is kept.

``Content-Security-Policy``
    The pages load scripts, styles, fonts and images from Booklab only and have no inline
    script or style (the deploy page's settings are a ``type="application/json"`` data
    block, which no browser runs); they talk to Booklab only (``fetch``, ``EventSource``)
    and nobody may frame them. Forms post to Booklab, and to GitLab as well: a form sent
    with an expired login is redirected to GitLab's sign-in, and browsers check
    ``form-action`` on redirects too.
``X-Frame-Options: DENY``
    ``frame-ancestors 'none'`` for browsers that predate it.
``X-Content-Type-Options: nosniff``
    Every response is taken as its declared type.
``Referrer-Policy: same-origin``
    Booklab's URLs (project paths, branch names) are not sent to GitLab or to the
    notebooks; Booklab's own requests keep them. Launch links and the OAuth flow do not
    depend on a ``Referer``.
``Strict-Transport-Security``
    Only when ``web/url`` is https, and without ``includeSubDomains``: notebooks live on
    subdomains that ``routes/scheme`` may serve over plain http.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from booklab.config import Config
from booklab.web.pages import context_of

#: one year, the usual minimum for HSTS
HSTS_MAX_AGE = 31536000


def content_security_policy(config: Config) -> str:
    gitlab = urlsplit(config.gitlab_host)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "font-src 'self'",
            "connect-src 'self'",
            f"form-action 'self' {gitlab.scheme}://{gitlab.netloc}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def security_headers(config: Config) -> list[tuple[str, str]]:
    """The headers every response of the web tier gets, for this configuration."""
    headers = [
        ("Content-Security-Policy", content_security_policy(config)),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]
    if config.web_url.startswith("https://"):
        headers.append(("Strict-Transport-Security", f"max-age={HSTS_MAX_AGE}"))
    return headers


class SecurityHeaders:
    """WSGI middleware: adds ``headers`` to every response that lacks them."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], headers: list[tuple[str, str]]) -> None:
        self.app = wsgi_app
        self.headers = headers

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in response_headers}
            added = [(name, value) for name, value in self.headers if name.lower() not in present]
            return start_response(status, [*response_headers, *added], exc_info)

        return self.app(environ, start)


def init_app(app: Flask) -> None:
    config = context_of(app).config
    app.wsgi_app = SecurityHeaders(app.wsgi_app, security_headers(config))  # type: ignore[method-assign]
