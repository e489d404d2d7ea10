"""Whether a request that the session cookie alone authenticates may start a deployment.

Browsers send the session cookie (SameSite=Lax) with every request from the same *site*,
and a notebook host (``<slug>.<fqdn>``) is the same site as the web tier: a notebook page,
which runs the repository's JavaScript, could otherwise start deployments in its user's
name with ``fetch('/build/gl/...')``, or by sending the whole window to a launch link.
Fetch metadata (the ``Sec-Fetch-*`` request headers every current browser sends) tells
where a request comes from:

- ``Sec-Fetch-Site: same-origin`` (a Booklab page, e.g. the deploy page's own event
  stream) or ``none`` (an address typed or bookmarked): may start.
- A top-level navigation the user made with a click (``Sec-Fetch-Mode: navigate``,
  ``Sec-Fetch-Dest: document``, ``Sec-Fetch-User: ?1``): a launch link in a README, an
  e-mail or a notebook; the launch page may start it, as BinderHub's links do.
- Anything else: a navigation no click made (a script sending the window away), a
  request from another site or from a notebook host (``same-site``, ``cross-site``), or
  a request without fetch metadata (an old browser, or a forged one): the launch page asks
  for a click on Launch (a form with its CSRF token) and the event stream starts nothing.

Requests authenticated by a GitLab token in a header (the CLI, scripts) carry no ambient
credentials, and are not concerned.
"""

from __future__ import annotations

from flask import request

#: ``Sec-Fetch-Site`` values of a request from a Booklab page or from the user's own hands
OWN = frozenset({"same-origin", "none"})
WHY = (
    "This request came from another page than Booklab's ({site}), so it starts nothing with your "
    "Booklab login: launch from Booklab's deploy page, or with a GitLab token in a header."
)


def from_booklab() -> bool:
    """The request comes from a Booklab page, or from an address the user typed."""
    return request.headers.get("Sec-Fetch-Site") in OWN


def clicked_navigation() -> bool:
    """The request is a top-level navigation the user made with a click (on any site)."""
    headers = request.headers
    return (
        headers.get("Sec-Fetch-Mode") == "navigate"
        and headers.get("Sec-Fetch-Dest") == "document"
        and headers.get("Sec-Fetch-User") == "?1"
    )


def refusal() -> str:
    """Why a request from elsewhere starts nothing, naming where it came from."""
    return WHY.format(site=request.headers.get("Sec-Fetch-Site") or "the browser did not say where from")
