"""Routes from ``<slug>.<domain>`` to notebooks through Traefik (``notebook/domain``, by
default the web tier's ``fqdn``), published the way ``routes/publisher`` says, behind one
small interface (:class:`~booklab.pipeline.routes.publishers.Routes`):

- ``docker``: labels on the notebook container, read by Traefik's docker provider (one
  host); removing the container removes the route.
- ``redis``: keys under ``traefik/`` read by Traefik's Redis provider, pointing at the
  address the runner publishes the notebook on (runners on several hosts).
- ``none``: no route; a notebook is reached at that address directly.

With ``routes/forward_auth`` (on by default) each Traefik route also carries a
forward-auth middleware: before every request to the notebook, Traefik asks the web tier
(:mod:`booklab.web.notebook_auth`), which lets only the notebook's owner through. A container's labels
carry a middleware of its own, ``<slug>-auth``, asking at ``<routes/auth_url>/auth/notebook/<slug>``; the
Redis provider's routes share one, asking at ``<routes/auth_url>/auth/notebook``, which tells the notebook
by the host the request was for. The
headers in :data:`~booklab.pipeline.routes.names.AUTH_RESPONSE_HEADERS` are set anew from
the web tier's answer, so Booklab's own credentials (a personal access token, the notebook
host's login cookie) never reach the notebook's code.

A published route counts only once Traefik serves it: its API shows the router enabled and
the notebook answers through Traefik's entrypoint with its token (and, behind forward-auth,
with a one-off value the web tier lets through:
:data:`~booklab.pipeline.routes.waiting.ROUTE_CHECK_HEADER`).

- :mod:`~booklab.pipeline.routes.names`: what a route is named and made of (host, rule,
  public URL, Traefik's container labels and Redis keys, the forward-auth middleware's);
- :mod:`~booklab.pipeline.routes.publishers`: the publishers, one per ``routes/publisher``;
- :mod:`~booklab.pipeline.routes.waiting`: waiting until Traefik serves a route, and the
  route check that lets the wait through forward-auth.
"""
