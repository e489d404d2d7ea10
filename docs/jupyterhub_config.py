"""JupyterHub's configuration for a site whose users open Booklab's builds as their own named servers
(Booklab's ``launch/target: jupyterhub``). The tests run the hub with this very file.

The hub runs as a process beside Booklab, on a host with the Docker Engine Booklab's runners build on, and
starts each server as a container of Booklab's image on Booklab's notebook network, with the hardening of
Booklab's own notebooks. Booklab is a service of the hub: it asks, with its API token, for a named server of
a user with an image and Booklab's grant for that user, server and image; the spawner starts no other
image a user asks for (``booklab.hub.spawner``). Users log in with the same GitLab as Booklab's, and the
hub's user is the GitLab username.

Set in the environment (or edit the values below):

- ``HUB_URL``: where users reach the hub (its proxy), e.g. https://hub.example.org
- ``HUB_BIND_URL``: where the hub's proxy listens, when not at ``HUB_URL`` (e.g. http://0.0.0.0:8000 behind TLS)
- ``HUB_SUBDOMAIN_HOST``: e.g. https://hub.example.org, with a wildcard DNS record and certificate for
  ``*.hub.example.org``: each user's servers on a host of their own (``alice.hub.example.org``). Booklab
  launches nothing on a hub without it: there a repository's server would share the hub's origin, and its
  pages' scripts would act as their user on the hub
- ``HUB_API_URL``: where the hub's own API listens, an address notebooks reach (the notebook network's
  gateway: they report to the hub), e.g. http://172.30.0.1:8081; with Booklab's ``notebook/unreachable``,
  its port is Booklab's ``jupyterhub/api_port``
- ``HUB_STATE``: a directory of the hub's own (its database, cookie secret)
- ``HUB_NOTEBOOK_NETWORK``: Booklab's ``notebook/network`` (default booklab-notebooks)
- ``HUB_DEFAULT_IMAGE``: the image of servers started from the hub's own pages
- ``BOOKLAB_URL``: Booklab's web tier at its own address, e.g. http://10.0.0.5:8080 (a link in the hub's
  Services menu, which the hub's proxy forwards there with the hub's host name: not through a proxy that routes
  by host name, such as Booklab's Traefik); Booklab answers with a redirect to its public address
- ``BOOKLAB_HUB_TOKEN_FILE``: a file holding the API token Booklab uses (``jupyterhub/api_token``), 0600
- ``BOOKLAB_ADDS_USERS``: ``true`` when Booklab adds the users the hub does not know
  (``jupyterhub/create_users``), which needs the superuser-grade ``admin:users``
- ``HUB_PROXY``: ``traefik`` for Booklab's own Traefik as the hub's proxy (else configurable-http-proxy, whose
  API listens at ``HUB_PROXY_API_URL``), with ``HUB_TRAEFIK_REDIS_URL`` (Booklab's Redis), the hub's login
  there (``HUB_TRAEFIK_REDIS_USERNAME``, ``HUB_TRAEFIK_REDIS_PASSWORD``: an ACL user of the routes' keys alone,
  see Booklab's README), ``HUB_TRAEFIK_REDIS_DB`` (Booklab's ``routes/redis_db``, default 1),
  ``HUB_TRAEFIK_API_URL`` (Traefik's API) and ``HUB_TRAEFIK_ENTRYPOINT`` (default ``hub``: an entrypoint of
  Booklab's Traefik for the hub's routes alone)
- ``GITLAB_URL``, ``GITLAB_CLIENT_ID``, ``GITLAB_CLIENT_SECRET``: the hub's own OAuth application in GitLab
  (callback ``<HUB_URL>/hub/oauth_callback``, scope ``read_user``)
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (JupyterHub gives it)

hub_url = os.environ["HUB_URL"]
state = Path(os.environ["HUB_STATE"])
booklab_token = Path(os.environ["BOOKLAB_HUB_TOKEN_FILE"]).read_text().strip()

c.JupyterHub.bind_url = os.environ.get("HUB_BIND_URL", hub_url)
c.JupyterHub.public_url = hub_url
c.JupyterHub.hub_bind_url = os.environ["HUB_API_URL"]
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.JupyterHub.allow_named_servers = True
if os.environ.get("HUB_SUBDOMAIN_HOST"):
    c.JupyterHub.subdomain_host = os.environ["HUB_SUBDOMAIN_HOST"]
    # over https, cookies a user's host cannot overwrite from another (browsers take __Host- only with https)
    c.JupyterHub.cookie_host_prefix_enabled = c.JupyterHub.subdomain_host.startswith("https://")
if os.environ.get("HUB_PROXY") == "traefik":
    # the proxy: Booklab's own Traefik (pip install 'jupyterhub-traefik-proxy[redis]'), which the hub's routes
    # reach through Booklab's routes database in Redis, served on an entrypoint of the hub's own
    c.JupyterHub.proxy_class = "traefik_redis"
    c.TraefikRedisProxy.should_start = False  # Booklab's Traefik runs already
    c.TraefikRedisProxy.redis_url = os.environ["HUB_TRAEFIK_REDIS_URL"]  # its host and port only
    c.TraefikRedisProxy.redis_username = os.environ.get("HUB_TRAEFIK_REDIS_USERNAME", "")
    c.TraefikRedisProxy.redis_password = os.environ.get("HUB_TRAEFIK_REDIS_PASSWORD", "")
    c.TraefikRedisProxy.redis_client_kwargs = {"db": int(os.environ.get("HUB_TRAEFIK_REDIS_DB", "1"))}
    c.TraefikRedisProxy.traefik_entrypoint = os.environ.get("HUB_TRAEFIK_ENTRYPOINT", "hub")
    c.TraefikRedisProxy.traefik_api_url = os.environ["HUB_TRAEFIK_API_URL"]
    c.TraefikRedisProxy.traefik_api_username = "hub"  # Booklab's Traefik API takes no login: must not be empty
    c.TraefikRedisProxy.traefik_api_password = "unused"
    c.TraefikRedisProxy.enable_setup_dynamic_config = False  # no router of its own to Traefik's API
else:
    # the proxy: configurable-http-proxy (Debian's node-configurable-http-proxy), its API on loopback
    c.ConfigurableHTTPProxy.api_url = os.environ.get("HUB_PROXY_API_URL", "http://127.0.0.1:8001")

# GitLab login, as Booklab's: the hub's user is the GitLab username; users Booklab adds may log in
c.JupyterHub.authenticator_class = "gitlab"
c.GitLabOAuthenticator.oauth_callback_url = f"{hub_url}/hub/oauth_callback"
c.GitLabOAuthenticator.scope = ["read_user"]
c.GitLabOAuthenticator.allow_existing_users = True
c.Authenticator.auto_login = True  # straight to GitLab: one click from Booklab's Launch to the server

# Booklab's images, each only as Booklab grants it (Booklab refuses images that run as root), without
# capabilities or new privileges, with bounded memory, CPU and processes, as Booklab's own notebooks
c.JupyterHub.spawner_class = "booklab.hub.spawner.BooklabSpawner"
c.BooklabSpawner.grant_secret = booklab_token
c.DockerSpawner.image = os.environ.get("HUB_DEFAULT_IMAGE", "quay.io/jupyter/base-notebook")
c.DockerSpawner.network_name = os.environ.get("HUB_NOTEBOOK_NETWORK", "booklab-notebooks")
c.DockerSpawner.pull_policy = "never"  # Booklab's images are on this engine (or its registry's, pulled by Booklab)
c.DockerSpawner.cmd = ["jupyterhub-singleuser"]
c.DockerSpawner.name_template = "booklab-hub-{username}--{raw_servername}"
c.DockerSpawner.remove = True  # Booklab's own servers stay when they stop, until Booklab has saved their work
c.DockerSpawner.mem_limit = "2G"
c.DockerSpawner.cpu_limit = 1.0
c.DockerSpawner.extra_host_config = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "pids_limit": 512}

# Booklab, a service: a link in the Services menu, and a role to start and stop users' servers
c.JupyterHub.services = [
    {"name": "booklab", "url": os.environ["BOOKLAB_URL"], "api_token": booklab_token, "display": True, "timeout": 5}
]
# admin:servers shows Booklab each server's container; admin:users lets it add users (jupyterhub/create_users)
booklab_scopes = ["servers", "admin:servers"]
if os.environ.get("BOOKLAB_ADDS_USERS") == "true":
    booklab_scopes.append("admin:users")
c.JupyterHub.load_roles = [{"name": "booklab", "services": ["booklab"], "scopes": booklab_scopes}]
c.JupyterHub.extra_user_scopes = ["access:services!service=booklab"]
