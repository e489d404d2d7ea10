"""The spawner a site's JupyterHub uses for Booklab's images (``c.JupyterHub.spawner_class =
"booklab.hub.spawner.BooklabSpawner"``): DockerSpawner, which starts an image asked for in the server's
``user_options`` only with Booklab's grant for that user, server and image (:mod:`booklab.hub.grants`).
Servers started without an image (from the hub's own pages) run the site's ``c.DockerSpawner.image`` as
before; an image asked for without a valid grant is refused, and the refusal names no other image.
"""

from __future__ import annotations

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Unicode

from booklab.hub import grants


class BooklabSpawner(DockerSpawner):
    grant_secret = Unicode(
        "",
        config=True,
        help="The secret Booklab keys its image grants with: the API token of the hub's booklab service.",
    )

    async def check_allowed(self, image: str) -> str:
        presented = self.user_options.get(grants.OPTION, "")
        if self.grant_secret and grants.valid(self.grant_secret, self.user.name, self.name, image, presented):
            return image
        raise web.HTTPError(403, "Booklab has not granted this image to this server: launch it from Booklab.")
