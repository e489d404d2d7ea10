"""Image grants: Booklab's word to a site's JupyterHub that one user may run one image as one named server,
until a time.

Any user of a hub may ask it to start servers of their own with options of their choosing (its REST API,
scope ``self``), an image among them. The images Booklab builds hold private repositories, so the hub must
start an image for a user only when Booklab says that user may: Booklab puts a grant beside the image in the
server's ``user_options``, and the spawner (:mod:`booklab.hub.spawner`) checks it. A grant is an HMAC-SHA256,
keyed by a key derived from the secret Booklab and the hub share (the hub's API token of Booklab's service),
of the user, the server's name, the image and the grant's expiry; a user knows none of the key, so cannot
forge one, nor move one to another image, server or user.
"""

from __future__ import annotations

import hashlib
import hmac
import time

#: names the key derived from the shared secret for grants (another use of the secret gets another key)
PURPOSE = b"booklab image grant"
#: the ``user_options`` a grant travels in, beside ``image``
OPTION = "booklab_grant"


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()


def _mac(secret: str, user: str, server: str, image: str, expires: int) -> str:
    message = "\n".join((user, server, image, str(expires))).encode()
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def grant(secret: str, user: str, server: str, image: str, lifetime: int) -> str:
    """A grant for ``user`` to run ``image`` as the server ``server`` for ``lifetime`` seconds from now."""
    expires = int(time.time()) + lifetime
    return f"{expires}.{_mac(secret, user, server, image, expires)}"


def valid(secret: str, user: str, server: str, image: str, presented: str) -> bool:
    """Whether ``presented`` is an unexpired grant of exactly this user, server and image."""
    expires, _, mac = str(presented).partition(".")
    if not (expires.isascii() and expires.isdigit()) or int(expires) < time.time():
        return False
    return hmac.compare_digest(mac, _mac(secret, user, server, image, int(expires)))
