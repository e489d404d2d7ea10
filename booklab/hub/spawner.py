"""The spawner a site's JupyterHub uses for Booklab's images (``c.JupyterHub.spawner_class =
"booklab.hub.spawner.BooklabSpawner"``): DockerSpawner, which starts an image asked for in the server's
``user_options`` only with Booklab's grant for that user, server, image and limits (:mod:`booklab.hub.grants`),
and gives the container the memory and CPUs Booklab granted. Servers started without an image (from the hub's
own pages) run the site's ``c.DockerSpawner.image`` with the site's limits, as before; an image asked for
without a valid grant is refused, and the refusal names no other image.

A server of Booklab's always starts from a new container of the granted image, with a new API token; its
container stays when the server stops, whoever stops it (the hub's admin page, its culler, its user), and its
token goes: Booklab's runner, which watches it, saves its work when its user asked for that, then removes it
and the server. Until then the server starts again only with a new grant, never from the hub's pages. The
site's ``remove`` and limits apply to its other servers.
"""

from __future__ import annotations

from dockerspawner import DockerSpawner
from tornado import web
from traitlets import Unicode

from booklab.hub import grants

#: the key of the server's state that says the server is Booklab's (kept over a hub's restart)
BOOKLABS = "booklab_server"
#: why a server of Booklab's does not start again from the hub's pages
NOT_FROM_THE_HUB = "Booklab saves this server's work, then removes it: launch it again from Booklab."


class BooklabSpawner(DockerSpawner):
    grant_secret = Unicode(
        "",
        config=True,
        help="The secret Booklab keys its image grants with: the API token of the hub's booklab service.",
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._site = (self.remove, self.mem_limit, self.cpu_limit)
        self.booklabs = False
        """whether the server is Booklab's: granted once, until the hub forgets the server"""

    @property
    def will_resume(self) -> bool:
        # a server of Booklab's never starts again from its container: its API token goes when it stops
        return False if self.booklabs else super().will_resume

    async def start(self):
        if self.booklabs and not self.user_options.get("image"):
            raise web.HTTPError(403, NOT_FROM_THE_HUB)
        self.remove, self.mem_limit, self.cpu_limit = self._site  # until a grant says the server is Booklab's
        return await super().start()

    async def check_allowed(self, image: str) -> str:
        asked = {**self.user_options, "image": image}
        if not (self.grant_secret and grants.valid(self.grant_secret, self.user.name, self.name, asked)):
            raise web.HTTPError(403, "Booklab has not granted this image to this server: launch it from Booklab.")
        if await self.get_object():  # an earlier start's container, even running: never started again
            await self.docker("remove_container", self.object_id, v=True, force=True)
            if await self.get_object():
                raise web.HTTPError(409, "An earlier container of this server is still being removed: try again.")
        self.booklabs, self.remove = True, False
        self.mem_limit = int(asked[grants.MEMORY])
        self.cpu_limit = float(asked[grants.CPUS])
        return image

    def get_state(self) -> dict:
        state = super().get_state()
        if self.booklabs:
            state[BOOKLABS] = True
        return state

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        if state.get(BOOKLABS):
            self.booklabs, self.remove = True, False
