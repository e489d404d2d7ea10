"""Image grants: Booklab's word to a site's JupyterHub that one user may run one image as one named server,
with the memory and CPUs Booklab gave it, until a time.

Any user of a hub may ask it to start servers of their own with options of their choosing (its REST API,
scope ``self``), an image among them. The images Booklab builds hold private repositories, so the hub must
start an image for a user only when Booklab says that user may: Booklab puts a grant beside the image and the
notebook's limits in the server's ``user_options`` (:func:`options`), and the spawner
(:mod:`booklab.hub.spawner`) checks it and applies the limits. A grant is an HMAC-SHA256, keyed by a key
derived from the secret Booklab and the hub share (the hub's API token of Booklab's service), of the user,
the server's name, the image, the limits and the grant's expiry; a user knows none of the key, so cannot
forge one, nor move one to another image, server, user or limit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping

#: names the key derived from the shared secret for grants (another use of the secret gets another key)
PURPOSE = b"booklab image grant"
#: the ``user_options`` a grant travels in
OPTION = "booklab_grant"
#: the ``user_options`` of the notebook's limits: memory in bytes, CPUs
MEMORY, CPUS = "booklab_memory", "booklab_cpus"
#: the ``user_options`` a grant covers
COVERED = ("image", MEMORY, CPUS)


def options(secret: str, user: str, server: str, image: str, memory: int, cpus: float, lifetime: int) -> dict[str, str]:
    """The ``user_options`` of ``user``'s server ``server`` of ``image`` within ``memory`` bytes and ``cpus``
    CPUs, with their grant for ``lifetime`` seconds from now."""
    terms = {"image": image, MEMORY: str(memory), CPUS: str(cpus)}
    expires = int(time.time()) + lifetime
    return {**terms, OPTION: f"{expires}.{_mac(secret, user, server, terms, expires)}"}


def valid(secret: str, user: str, server: str, asked: Mapping[str, object]) -> bool:
    """Whether the options ``asked`` hold an unexpired grant of exactly this user, server, image and limits."""
    expires, _, mac = str(asked.get(OPTION, "")).partition(".")
    if not (expires.isascii() and expires.isdigit() and len(expires) <= 12 and mac.isascii()):
        return False
    if int(expires) < time.time():
        return False
    return hmac.compare_digest(mac, _mac(secret, user, server, asked, int(expires)))


def _mac(secret: str, user: str, server: str, terms: Mapping[str, object], expires: int) -> str:
    key = hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()
    message = json.dumps([user, server, *(str(terms.get(name, "")) for name in COVERED), expires])
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
