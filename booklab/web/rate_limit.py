"""Per-client rate limits of the web tier's requests that cost it work without a valid
login: anonymous requests to forward-auth (``/auth/notebook/*``) and checks of GitLab
tokens not in the cache (each one a request to GitLab).

One counter per client, kind and fixed window (``web/rate_window`` seconds) in Redis,
``ratelimit:<kind>:<client>:<window>``, counted and given its TTL in one round trip. Over
the limit, the answer is 429 with ``Retry-After`` (the seconds left in the window).

The client is the address the nearest ``web/proxy_hops`` proxies saw: Traefik appends the
address of whoever connected to it to ``X-Forwarded-For`` (and, without
``forwardedHeaders.trustedIPs``, drops what the client sent), so with one hop the client is
the last entry. This trusts that only those proxies reach the web tier: a client that
connects directly could name any address in ``X-Forwarded-For``. With ``web/proxy_hops: 0``
the connection's own address counts.
"""

from __future__ import annotations

import ipaddress
import time

from flask import request
from werkzeug.exceptions import TooManyRequests

from booklab.state import schema
from booklab.web.pages import context

#: anonymous (or refused) requests to forward-auth
AUTH = "auth"
#: GitLab token checks
TOKEN = "token"


def client_address() -> str:
    """The client, as the proxies in front of the web tier forwarded its address: an IPv4
    address, or the /64 network of an IPv6 one (one client holds a whole /64, and could
    otherwise take a new address, and a new allowance, for each request)."""
    hops = context().config.web_proxy_hops
    forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    address = forwarded[-min(hops, len(forwarded))] if hops > 0 and forwarded else request.remote_addr or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


def spend(kind: str, allowed: int) -> None:
    """Count one request of ``kind`` from this client; raise 429 (with ``Retry-After``) once
    it made more than ``allowed`` in this window (``allowed`` 0: no limit)."""
    if allowed <= 0:
        return
    window = max(1, context().config.web_rate_window)
    now = int(time.time())
    key = schema.rate_limit(kind, client_address(), now // window)
    with context().redis.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, window, nx=True)
        count, _ = pipe.execute()
    if count > allowed:
        retry_after = window - now % window
        raise TooManyRequests(
            f"Too many requests from your address: wait {retry_after} s and try again.", retry_after=retry_after
        )
