"""The names of Booklab's cookies, and the rule that keeps them on the host that set them.

Notebook hosts run a repository's code, and by default they are subdomains of the web
tier (``<slug>.<fqdn>`` beside ``<fqdn>``): a notebook's server or its JavaScript can set a
cookie for the parent domain (``Domain=<fqdn>``), which the browser then sends to the web
tier too (cookie tossing, session fixation). So Booklab's cookies carry no ``Domain`` (they
stay on the host that set them) and, over https, take the ``__Host-`` prefix: a browser
accepts a ``__Host-`` cookie only when it is Secure, has ``Path=/`` and no ``Domain``, and
was set by that very host, so no other host can plant or replace it. Over plain http (a
local demo) the names stay unprefixed, as browsers refuse ``__Host-`` cookies there.
"""

from __future__ import annotations

#: the web tier's session cookie (:mod:`booklab.web.sessions`)
SESSION = "booklab_session"
#: a notebook host's login cookie (:mod:`booklab.web.notebook_auth`)
NOTEBOOK = "booklab_notebook"
HOST_PREFIX = "__Host-"
#: every name Booklab's cookies take, never handed on to a notebook
ALL = frozenset({SESSION, NOTEBOOK, HOST_PREFIX + SESSION, HOST_PREFIX + NOTEBOOK})


def name(base: str, secure: bool) -> str:
    """The cookie's name: ``__Host-<base>`` over https, ``<base>`` over http."""
    return HOST_PREFIX + base if secure else base
