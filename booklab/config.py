"""Booklab's configuration: one typed object read from ``config.yml``, overridden by
environment variables, validated at start-up.

Every setting has a path in ``config.yml`` (``gitlab/host``), a default, a one-line help
and an environment variable (``BOOKLAB_GITLAB_HOST``; a few also answer to a short name
such as ``FQDN`` or ``TMPDIR``). ``booklab config`` prints them all.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import yaml

from booklab import profiles, units, urlpaths, warm
from booklab.errors import ConfigError
from booklab.state import schema

CONFIG_FILE_ENV = "BOOKLAB_CONFIG"


#: settings that are secrets: never printed
SECRETS = frozenset(
    {
        "secret_key",
        "gitlab_consumer_secret",
        "web_metrics_token",
        "images_registry_password",
        "jupyterhub_api_token",
        "warm_gitlab_token",
    }
)

#: secret settings that may be read from the file their ``<name>_file`` setting names, and what a message calls
#: that file and the secret
SECRET_FILES = {
    "secret_key": ("secret key", "key"),
    "images_registry_password": ("registry password", "password"),
    "jupyterhub_api_token": ("JupyterHub API token", "token"),
    "warm_gitlab_token": ("GitLab token of warm/refresh", "token"),
}

#: the smallest notebook: a repository's .booklab.yml may ask for no less, so notebook/max_* may be no lower
MIN_NOTEBOOK_MEMORY = 128 * 1024**2  # bytes
MIN_NOTEBOOK_CPUS = 0.1
MIN_NOTEBOOK_IDLE_TIMEOUT = 60  # seconds


def _setting(
    path: str, default: Any, help: str, alias: str | None = None, parse: Callable[[Any, str], Any] | None = None
) -> Any:
    """A setting; ``parse(raw, origin)`` reads a structured one (a mapping in config.yml, its
    text in the environment) instead of the default's type."""
    return field(default=default, metadata={"path": path, "help": help, "alias": alias, "parse": parse})


@dataclass(frozen=True)
class Config:
    """All of Booklab's settings; build it with :func:`load`."""

    gitlab_host: str = _setting("gitlab/host", "https://gitlab.com", "Base URL of the GitLab server.")
    gitlab_consumer_key: str = _setting(
        "gitlab/consumer_key",
        "",
        "OAuth application id registered in GitLab (web tier and runners, which refresh logins).",
    )
    gitlab_consumer_secret: str = _setting(
        "gitlab/consumer_secret",
        "",
        "OAuth application secret registered in GitLab (web tier and runners, which refresh logins).",
    )
    gitlab_known_hosts: str = _setting(
        "gitlab/known_hosts",
        "",
        "known_hosts lines of GitLab's SSH server; empty: learn the key on first use and keep it.",
    )
    gitlab_timeout: float = _setting(
        "gitlab/timeout",
        15.0,
        "Seconds to wait for a GitLab API answer (a runner's checks, which sweep deploy keys, wait 5 at most).",
    )
    clone_method: str = _setting(
        "clone/method",
        "ssh",
        "ssh: a read-only deploy key per deployment; https: the user's OAuth token.",
    )
    redis_url: str = _setting("redis/url", "redis://localhost:6379/0", "Redis for state, logs and the Celery broker.")
    secret_key: str = _setting(
        "secret_key", "", "Secret that encrypts private keys and tokens at rest; long and random."
    )
    secret_key_file: str = _setting(
        "secret_key_file",
        "",
        "File holding secret_key instead (mode 0600), which keeps it out of the environment; not both.",
    )
    fqdn: str = _setting(
        "fqdn",
        "localhost",
        "Domain of the web tier; notebooks get <slug>.<fqdn> unless notebook/domain is set.",
        alias="FQDN",
    )
    tmpdir: str = _setting("tmpdir", tempfile.gettempdir(), "Where runners clone repositories.", alias="TMPDIR")
    image_prefix: str = _setting("build/image_prefix", "booklab", "Images are named <prefix>/<project>:<sha>.")
    build_timeout: int = _setting("build/timeout", 1800, "Seconds a repo2docker build may take.")
    build_memory: str = _setting("build/memory", "4g", "Memory limit of a build (e.g. 4g); empty: none.")
    notebook_domain: str = _setting(
        "notebook/domain",
        "",
        "Domain under which notebooks get <slug>.<domain>, apart from the web tier's (safest: another registrable "
        "domain); empty: <slug>.<fqdn>.",
    )
    notebook_memory: str = _setting("notebook/memory", "2g", "Memory limit of a notebook container.")
    notebook_cpus: float = _setting("notebook/cpus", 1.0, "CPU limit of a notebook container.")
    notebook_pids_limit: int = _setting(
        "notebook/pids_limit", 512, "Most processes and threads a notebook container may run at once."
    )
    notebook_allow_root: bool = _setting(
        "notebook/allow_root",
        False,
        "true: run images whose user is root (still without capabilities); false: refuse them.",
    )
    notebook_idle_timeout: int = _setting(
        "notebook/idle_timeout", 3600, "Seconds without activity before a notebook is culled."
    )
    notebook_max_lifetime: int = _setting(
        "notebook/max_lifetime", 43200, "Seconds a notebook may live at the most (less than 7 days)."
    )
    notebook_max_memory: str = _setting(
        "notebook/max_memory", "8g", "Most memory a project's .booklab.yml may ask for (more is capped)."
    )
    notebook_max_cpus: float = _setting(
        "notebook/max_cpus", 4.0, "Most CPUs a project's .booklab.yml may ask for (more is capped)."
    )
    notebook_max_idle_timeout: int = _setting(
        "notebook/max_idle_timeout",
        86400,
        "Longest idle timeout in seconds a project's .booklab.yml may ask for (longer is capped).",
    )
    notebook_ready_timeout: int = _setting(
        "notebook/ready_timeout", 120, "Seconds a new notebook has to answer /api/status."
    )
    notebook_network: str = _setting(
        "notebook/network",
        "",
        "Docker network for notebook containers, created by the first runner when missing (notebooks on it "
        "cannot reach each other); empty: the default bridge.",
    )
    notebook_publish: bool = _setting(
        "notebook/publish",
        True,
        "true: publish a notebook's port on notebook/host; false: reach it on notebook/network only.",
    )
    notebook_host: str = _setting(
        "notebook/host",
        "127.0.0.1",
        "Address on which a runner publishes its notebook's port.",
    )
    notebook_reachable_from: str = _setting(
        "notebook/reachable_from",
        "",
        "IPv4 addresses or networks (comma-separated: Traefik's host) that alone may open connections to this "
        "host's notebooks, by a firewall rule the runner sets; empty: no rule (notebooks on one host).",
    )
    notebook_unreachable: str = _setting(
        "notebook/unreachable",
        "",
        "IPv4 networks (comma-separated: Booklab's hosts, with Redis, the registry and other hosts' notebooks) "
        "that notebooks may not open connections to, by a firewall rule the runner sets; empty: no rule.",
    )
    notebook_urlpath: str = _setting(
        "notebook/urlpath",
        "lab",
        "Page a notebook opens at when its project's .booklab.yml sets no urlpath: lab (JupyterLab), tree (the "
        "file list), or empty: the image's own default.",
    )
    routes_publisher: str = _setting(
        "routes/publisher",
        "none",
        "none: notebooks at their direct address; docker: Traefik labels on the container "
        "(one host); redis: Traefik's Redis provider (runners on several hosts).",
    )
    routes_scheme: str = _setting(
        "routes/scheme", "http", "Scheme of notebook URLs (https: Traefik's entrypoint terminates TLS)."
    )
    routes_port: int = _setting(
        "routes/port", 0, "Port of notebook URLs; 0: the scheme's default, left out of the URLs."
    )
    routes_entrypoint: str = _setting(
        "routes/entrypoint",
        "web",
        "Traefik entrypoint(s) of notebook routes, comma-separated (with TLS, e.g. websecure,check: the public "
        "one and a plain one on loopback where runners check new routes).",
    )
    routes_traefik_api: str = _setting(
        "routes/traefik_api",
        "http://127.0.0.1:8080",
        "Traefik's API, where runners see their routes go live; empty: they wait on the entrypoint alone "
        "(Traefik without an API).",
    )
    routes_traefik_entrypoint_url: str = _setting(
        "routes/traefik_entrypoint_url",
        "http://127.0.0.1:80",
        "Where runners reach Traefik's entrypoint to check a notebook answers through its route.",
    )
    routes_redis_db: int = _setting(
        "routes/redis_db",
        1,
        "Database, on redis/url's Redis server, of the routes Traefik's Redis provider reads (routes/publisher: "
        "redis; Traefik's providers.redis.db must name it). Traefik reads its whole database again on every change, "
        "so one of its own keeps that cost to the routes; redis/url's own database: beside Booklab's keys.",
    )
    routes_timeout: int = _setting("routes/timeout", 30, "Seconds Traefik has to serve a new route.")
    routes_forward_auth: bool = _setting(
        "routes/forward_auth",
        True,
        "true: Traefik asks the web tier (forward-auth) before each notebook request, so only "
        "the user who launched a notebook reaches it; false: Jupyter's token alone guards it.",
    )
    routes_auth_url: str = _setting(
        "routes/auth_url",
        "",
        "Where Traefik reaches the web tier for forward-auth, directly, not through a proxy (e.g. "
        "http://web:8080); empty: web/url (routes/publisher docker only).",
    )
    key_ttl: int = _setting("keys/ttl", 600, "Seconds an encrypted private deploy key lives in Redis.")
    gitlab_deploy_key_wait: float = _setting(
        "gitlab/deploy_key_wait",
        60.0,
        "Seconds a clone or a save waits for GitLab to accept a deploy key just added (a self-hosted "
        "GitLab writes keys from a background job); then a clone goes over HTTPS with the user's token.",
    )
    token_ttl: int = _setting(
        "keys/token_ttl",
        86400,
        "Seconds a queued deployment keeps the user's encrypted GitLab token (its longest wait).",
    )
    key_late_sweep: int = _setting(
        "keys/late_sweep",
        600,
        "Seconds after which the title of a deploy key whose adding got no answer is swept once more: GitLab may "
        "still add it after Booklab removed its title's keys (GitLab's own request timeouts end such a request "
        "within about 4 minutes; raise this with them).",
    )
    log_max_events: int = _setting("log/max_events", 5000, "Events kept per deployment log.")
    log_retention: int = _setting(
        "log/retention", 604800, "Seconds a run's full log (its owner downloads it) is kept after its last event."
    )
    access_allowed_groups: str = _setting(
        "access/allowed_groups",
        "",
        "GitLab groups (full paths, comma-separated) whose members may log in and launch, their subgroups' "
        "too; empty: anyone with a GitLab account.",
    )
    access_allowed_projects: str = _setting(
        "access/allowed_projects",
        "",
        "Groups or projects (full paths, comma-separated) that may be launched; empty: any the user can clone.",
    )
    limits_notebooks_per_user: int = _setting(
        "limits/notebooks_per_user", 2, "Notebooks a user may have running or queued at once; 0: no limit."
    )
    limits_notebooks_per_project: int = _setting(
        "limits/notebooks_per_project", 0, "Notebooks of one project running or queued at once; 0: no limit."
    )
    limits_queue_length: int = _setting(
        "limits/queue_length",
        200,
        "Notebooks waiting for a runner beyond which new launches are refused rather than left waiting; 0: no limit.",
    )
    admin_users: str = _setting(
        "admin/users",
        "",
        "GitLab usernames (comma-separated) of Booklab's operators, who see every runner and notebook at /admin.",
    )
    admin_gitlab_admins: bool = _setting(
        "admin/gitlab_admins",
        True,
        "true: the GitLab server's administrators are Booklab's operators too; false: only admin/users.",
    )
    save_give_up_after: int = _setting(
        "save/give_up_after",
        3600,
        "Seconds an automatic save is tried again while GitLab does not answer; then its changes are kept and "
        "the notebook ends.",
    )
    save_keep_failed: int = _setting(
        "save/keep_failed",
        604800,
        "Seconds (7 days at most) the changes of a save given up are kept for their owner to download.",
    )
    save_keep_max_size: str = _setting(
        "save/keep_max_size",
        "50m",
        "Largest download of the changes of a save given up (compressed, in Redis); files beyond are left out.",
    )
    runner_name: str = _setting("runner/name", "", "Runner name; empty: runner-<host>-<random>.")
    runner_poll_interval: float = _setting(
        "runner/poll_interval", 1.0, "Seconds between a runner's checks of its notebook."
    )
    broker_visibility_timeout: int = _setting(
        "broker/visibility_timeout", 3600, "Seconds before an unacknowledged task is given again."
    )
    retry_attempts: int = _setting(
        "retry/attempts", 4, "Tries of a step that fails because GitLab, git's network or Docker did not answer."
    )
    retry_first_delay: float = _setting(
        "retry/first_delay", 2.0, "Seconds before the second try; doubled before each next one (with jitter)."
    )
    retry_max_delay: float = _setting("retry/max_delay", 30.0, "Longest wait in seconds between two tries.")
    web_url: str = _setting(
        "web/url",
        "",
        "Public base URL of the web tier (OAuth callback, launch links); empty: the address each request came to.",
    )
    web_host: str = _setting("web/host", "127.0.0.1", "Address `booklab web` listens on.")
    web_port: int = _setting("web/port", 8080, "Port `booklab web` listens on.")
    web_workers: int = _setting("web/workers", 2, "Worker processes of `booklab web` (gunicorn).")
    web_connections: int = _setting(
        "web/connections", 1000, "Connections each web worker holds at once, open event streams included."
    )
    web_session_lifetime: int = _setting("web/session_lifetime", 604800, "Seconds a web login lasts when unused.")
    web_token_cache: int = _setting(
        "web/token_cache", 60, "Seconds the web tier trusts a personal access token GitLab accepted."
    )
    web_proxy_hops: int = _setting(
        "web/proxy_hops",
        1,
        "Proxies in front of the web tier that append to X-Forwarded-For (Traefik: 1); 0: the connection's address.",
    )
    web_rate_window: int = _setting("web/rate_window", 60, "Seconds of one window of the per-client rate limits.")
    web_auth_rate_limit: int = _setting(
        "web/auth_rate_limit",
        120,
        "Requests to /auth/notebook/* without a valid login a client may make per window; 0: no limit.",
    )
    web_token_rate_limit: int = _setting(
        "web/token_rate_limit",
        120,
        "Checks of GitLab tokens not in the cache a client may cause per window; 0: no limit.",
    )
    web_metrics_token: str = _setting(
        "web/metrics_token",
        "",
        "Token /metrics requires, sent as 'Authorization: Bearer <token>'; empty: /metrics is off.",
    )
    profiles_list: tuple[profiles.Profile, ...] = _setting(
        "profiles/list",
        (),
        "Machine profiles users pick at launch: name -> {memory, cpus, groups (empty: everyone), description}; "
        "empty: none, notebook/memory and notebook/cpus.",
        parse=profiles.parse,
    )
    profiles_default: str = _setting(
        "profiles/default",
        "",
        "Profile of a launch that picks none, when its .booklab.yml asks for none (a profile for everyone); "
        "empty: notebook/memory and notebook/cpus.",
    )
    images_max_disk: str = _setting(
        "images/max_disk",
        "50%",
        "Most disk Booklab's images may take on each runner host: a size (100g) or a share of the Docker data "
        "disk (50%); 0: no limit.",
    )
    images_max_age: int = _setting(
        "images/max_age", 0, "Seconds an image may go unlaunched before it is removed; 0: no limit."
    )
    images_clean_interval: int = _setting(
        "images/clean_interval", 600, "Seconds between two cleanings of a runner host's images."
    )
    images_prune_dangling: bool = _setting(
        "images/prune_dangling",
        True,
        "true: also remove every dangling image (layers a failed build left) older than build/timeout, Booklab's "
        "or not; false: only those Booklab built.",
    )
    images_registry: str = _setting(
        "images/registry",
        "",
        "Registry (host[:port]/path) through which runner hosts share images, named under it instead of "
        "build/image_prefix; empty: each host builds its own.",
    )
    images_registry_username: str = _setting(
        "images/registry_username", "", "User runners log in to images/registry as; empty: no login."
    )
    images_registry_password: str = _setting(
        "images/registry_password", "", "Password of images/registry_username (better: its _file)."
    )
    images_registry_password_file: str = _setting(
        "images/registry_password_file",
        "",
        "File holding images/registry_password instead (mode 0600), which keeps it out of the environment; not both.",
    )
    images_registry_max_age: int = _setting(
        "images/registry_max_age",
        0,
        "Seconds an image may go unlaunched before its tag is deleted from images/registry; 0: never.",
    )
    launch_target: str = _setting(
        "launch/target",
        "standalone",
        "standalone: Booklab runs each notebook and routes to it; jupyterhub: each notebook is its user's named "
        "server of the site's JupyterHub (jupyterhub/url), reached through the hub and its login.",
    )
    jupyterhub_url: str = _setting(
        "jupyterhub/url",
        "",
        "The site's JupyterHub, where Booklab reaches it and its API (e.g. https://hub.example.org).",
    )
    jupyterhub_api_token: str = _setting(
        "jupyterhub/api_token",
        "",
        "API token of Booklab's service in the hub, which also keys Booklab's image grants (better: its _file).",
    )
    jupyterhub_api_token_file: str = _setting(
        "jupyterhub/api_token_file",
        "",
        "File holding jupyterhub/api_token instead (mode 0600), which keeps it out of the environment; not both.",
    )
    jupyterhub_api_port: int = _setting(
        "jupyterhub/api_port",
        0,
        "Port of the hub's own API on this host (its hub_bind_url), which its servers report to: with "
        "notebook/unreachable, notebooks may open it on the host's own addresses as well as Traefik's ports.",
    )
    warm_projects: tuple[warm.Target, ...] = _setting(
        "warm/projects",
        (),
        "Branches kept warm: <project path>@<branch> -> how many started notebooks of the image it launched last "
        "idle runners hold for its next launches (warm spares); empty: none.",
        parse=warm.parse,
    )
    warm_refresh: int = _setting(
        "warm/refresh",
        0,
        "Seconds between two looks at the head of each branch of warm/projects: a new commit is built in the "
        "background (as warm/gitlab_token's user) and its spares replace the old ones; 0: spares follow the "
        "branch's launches only.",
    )
    warm_gitlab_token: str = _setting(
        "warm/gitlab_token",
        "",
        "GitLab token (a bot user's, with read_api and read_repository on the warm projects) that warm/refresh "
        "looks and builds with (better: its _file).",
    )
    warm_gitlab_token_file: str = _setting(
        "warm/gitlab_token_file",
        "",
        "File holding warm/gitlab_token instead (mode 0600), which keeps it out of the environment; not both.",
    )
    warm_recent: int = _setting(
        "warm/recent",
        0,
        "Also keep one spare of the latest image of each of the N branches the most users launched in the last 24 "
        "hours, on runners idle besides warm/projects' spares; 0: none.",
    )
    jupyterhub_create_users: bool = _setting(
        "jupyterhub/create_users",
        False,
        "true: a GitLab user the hub does not know yet is added to it at their first launch (the service needs "
        "admin:users); false: such a launch fails, saying so.",
    )

    @classmethod
    def settings(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls))

    def require(self, *names: str) -> None:
        """Stop with one clear sentence when one of these settings is empty."""
        for name in names:
            if not getattr(self, name):
                f = _field(name)
                raise ConfigError(
                    f"Setting {f.metadata['path']} is missing: set it in config.yml "
                    f"or in the environment variable {env_name(f)}."
                )

    def paths_of(self, name: str) -> tuple[str, ...]:
        """The comma-separated GitLab paths of the setting ``name`` (such as ``access_allowed_groups``)."""
        return tuple(path.strip().strip("/") for path in getattr(self, name).split(",") if path.strip().strip("/"))

    def networks_of(self, name: str) -> tuple[ipaddress.IPv4Network, ...]:
        """The comma-separated IPv4 addresses or networks of the setting ``name`` (such as
        ``notebook_unreachable``); ConfigError for anything else."""
        parsed = []
        for item in (part.strip() for part in getattr(self, name).split(",")):
            if not item:
                continue
            path = _field(name).metadata["path"]
            try:
                network = ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(
                    f"Setting {path} must list IPv4 addresses or networks such as 10.0.0.1 or 10.0.0.0/24, "
                    f"not {item!r}."
                ) from None
            if network.version != 4:
                raise ConfigError(f"Setting {path} takes IPv4 addresses and networks only (iptables), not {item!r}.")
            parsed.append(network)
        return tuple(parsed)

    def profile(self, name: str) -> profiles.Profile | None:
        """The profile ``name`` of ``profiles/list``, None when there is none of that name."""
        return profiles.named(self.profiles_list, name)

    def images_limit(self, disk_size: int | None) -> int | None:
        """images/max_disk in bytes, of a Docker data disk of ``disk_size`` bytes (None: one the
        runner cannot see); None: no limit. ConfigError when it is a share of a disk not seen."""
        size, share = self._images_max_disk()
        if share is None:
            return size or None
        if disk_size is None:
            raise ConfigError(
                f"Setting images/max_disk is {self.images_max_disk}, a share of the Docker data disk, which this "
                "runner cannot see: mount the Docker Engine's data directory (DockerRootDir of docker info) into "
                "the runner at the same path, read-only will do, or set images/max_disk to a size such as 100g."
            )
        return int(disk_size * share)

    def _images_max_disk(self) -> tuple[int, float | None]:
        """images/max_disk as (bytes, None) for a size, (0, share) for a percentage (``50%``: 0.5)."""
        value = self.images_max_disk.strip()
        try:
            return (0, units.parse_percent(value)) if value.endswith("%") else (units.parse_size(value), None)
        except ValueError:
            raise ConfigError(
                f"Setting images/max_disk must be a size such as 100g or a share of the Docker data disk such as "
                f"50%, not {value!r}."
            ) from None

    def bytes_of(self, name: str) -> int:
        """The size setting ``name`` (such as ``notebook_memory``) in bytes; ConfigError when it is not a size."""
        value = getattr(self, name)
        try:
            return units.parse_size(value)
        except ValueError:
            f = _field(name)
            raise ConfigError(
                f"Setting {f.metadata['path']} must be a size such as {f.default}, not {value!r}."
            ) from None


def check_notebook_maxima(max_memory: int, max_cpus: float, max_idle_timeout: int) -> None:
    """ConfigError unless each of notebook/max_* (bytes, CPUs, seconds) is a finite number, at least
    the smallest notebook's."""
    for name, value, minimum, show in (
        ("max_memory", max_memory, MIN_NOTEBOOK_MEMORY, units.format_size),
        ("max_cpus", max_cpus, MIN_NOTEBOOK_CPUS, "{:g}".format),
        ("max_idle_timeout", max_idle_timeout, MIN_NOTEBOOK_IDLE_TIMEOUT, units.format_duration),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not value >= minimum
            or not math.isfinite(value)
        ):
            raise ConfigError(f"Setting notebook/{name} must be at least {show(minimum)}, not {value!r}.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without a port) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _field(name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(Config) if f.name == name)


def env_name(f: dataclasses.Field) -> str:
    return "BOOKLAB_" + f.metadata["path"].upper().replace("/", "_")


def _lookup(tree: Mapping[str, Any], path: str) -> Any:
    node: Any = tree
    for part in path.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _convert(f: dataclasses.Field, raw: Any, origin: str) -> Any:
    if f.metadata["parse"] is not None:
        return f.metadata["parse"](raw, origin)
    kind = type(f.default)
    try:
        if kind is bool:
            if isinstance(raw, str):
                if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                    raise ValueError(raw)
                return raw.lower() in {"1", "true", "yes"}
            return bool(raw)
        value = kind(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"Setting {f.metadata['path']} ({origin}) must be a {kind.__name__}, not {raw!r}.") from None
    if isinstance(value, (int, float)) and value < 0:
        raise ConfigError(f"Setting {f.metadata['path']} ({origin}) must not be negative.")
    return value


def _validate(config: Config) -> None:
    for name in ("gitlab_host", "redis_url", "routes_traefik_api", "routes_traefik_entrypoint_url"):
        if name == "routes_traefik_api" and not config.routes_traefik_api:
            continue  # no API: the entrypoint alone
        url = urlsplit(getattr(config, name))
        if not url.scheme or not url.netloc:
            raise ConfigError(
                f"Setting {_field(name).metadata['path']} must be a URL such as "
                f"{_field(name).default}, not {getattr(config, name)!r}."
            )
    config.bytes_of("notebook_memory")  # sizes and maxima make sense
    config.bytes_of("save_keep_max_size")
    if config.save_keep_failed > schema.RECORD_TTL:
        raise ConfigError(
            f"Setting save/keep_failed must be at most {schema.RECORD_TTL} (7 days): Booklab forgets a notebook "
            "7 days after its end, and its owner could no longer find the changes kept."
        )
    check_notebook_maxima(
        config.bytes_of("notebook_max_memory"), config.notebook_max_cpus, config.notebook_max_idle_timeout
    )
    config.networks_of("notebook_reachable_from")
    config.networks_of("notebook_unreachable")
    if not config.notebook_publish and not config.notebook_network:
        raise ConfigError("Setting notebook/publish is false, so notebook/network must name a Docker network.")
    if config.clone_method not in {"ssh", "https"}:
        raise ConfigError(f"Setting clone/method must be ssh or https, not {config.clone_method!r}.")
    if config.routes_publisher not in {"none", "docker", "redis"}:
        raise ConfigError(f"Setting routes/publisher must be none, docker or redis, not {config.routes_publisher!r}.")
    if config.routes_scheme not in {"http", "https"}:
        raise ConfigError(f"Setting routes/scheme must be http or https, not {config.routes_scheme!r}.")
    if config.launch_target not in {"standalone", "jupyterhub"}:
        raise ConfigError(f"Setting launch/target must be standalone or jupyterhub, not {config.launch_target!r}.")
    if config.launch_target == "jupyterhub":
        config.require("jupyterhub_url", "jupyterhub_api_token")
        _check_base_url(config, "jupyterhub_url", "https://hub.example.org")
        hub = urlsplit(config.jupyterhub_url)
        if hub.scheme != "https" and not is_loopback(hub.hostname or ""):
            raise ConfigError(
                "Setting jupyterhub/url must be https:// (plain http only on loopback): Booklab sends the hub its "
                f"API token, which would travel in clear, not {config.jupyterhub_url!r}."
            )
        if config.networks_of("notebook_unreachable") and not 0 < config.jupyterhub_api_port < 65536:
            raise ConfigError(
                "Setting jupyterhub/api_port must be the port of the hub's own API (its hub_bind_url) when "
                "notebook/unreachable is set: the hub's servers report there, and the firewall would refuse it."
            )
    if config.warm_recent < 0:
        raise ConfigError(f"Setting warm/recent must be 0 or more, not {config.warm_recent}.")
    if config.warm_refresh < 0:
        raise ConfigError(f"Setting warm/refresh must be 0 or more, not {config.warm_refresh}.")
    if config.warm_refresh and config.warm_projects:
        config.require("warm_gitlab_token")
    warm_wanted = config.warm_projects or config.warm_recent
    if warm_wanted and (config.launch_target != "standalone" or config.routes_publisher == "docker"):
        raise ConfigError(
            "Settings warm/projects and warm/recent need launch/target standalone and routes/publisher redis or "
            "none: a spare gets its route when a launch claims it, and Traefik's docker provider reads a "
            "container's route from labels set when it starts."
        )
    if config.routes_port > 65535:
        raise ConfigError(f"Setting routes/port must be a TCP port or 0, not {config.routes_port}.")
    if config.web_url:
        _check_base_url(config, "web_url", "https://booklab.example.org")
    if not 0 < config.web_port < 65536:
        raise ConfigError(f"Setting web/port must be a TCP port (1-65535), not {config.web_port}.")
    if config.web_workers < 1 or config.web_connections < 1:
        raise ConfigError("Settings web/workers and web/connections must be at least 1.")
    if config.runner_poll_interval <= 0:
        raise ConfigError("Setting runner/poll_interval must be more than 0.")
    if config.key_late_sweep <= 0:
        raise ConfigError(f"Setting keys/late_sweep must be more than 0, not {config.key_late_sweep}.")
    if config.routes_publisher == "redis" and config.routes_forward_auth and not config.routes_auth_url:
        raise ConfigError(
            "Setting routes/auth_url is missing: with routes/publisher redis, Traefik asks the web tier whose notebook "
            "a request is for by the host it was for (X-Forwarded-Host), which a proxy on the way, such as the one "
            "in front of web/url, would replace; set it to the address at which Traefik reaches the web tier "
            "directly (e.g. http://web:8080) in config.yml or in BOOKLAB_ROUTES_AUTH_URL."
        )
    if config.routes_auth_url:
        url = urlsplit(config.routes_auth_url)
        if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
            raise ConfigError(
                f"Setting routes/auth_url must be a base URL such as http://web:8080, not {config.routes_auth_url!r}."
            )
    if config.notebook_pids_limit < 1:
        raise ConfigError("Setting notebook/pids_limit must be at least 1.")
    if config.notebook_max_lifetime >= schema.RECORD_TTL:
        raise ConfigError(
            f"Setting notebook/max_lifetime must be less than {schema.RECORD_TTL} s (7 days, how long "
            f"a deployment's record lives), not {config.notebook_max_lifetime}."
        )
    config.images_limit(disk_size=0)  # a size or a share
    if config.images_clean_interval < 1:
        raise ConfigError("Setting images/clean_interval must be at least 1.")
    if bool(config.images_registry_username) != bool(config.images_registry_password):
        raise ConfigError(
            "Settings images/registry_username and images/registry_password (or images/registry_password_file) "
            "go together: set both, or neither for a registry without login."
        )
    if config.retry_attempts < 1:
        raise ConfigError("Setting retry/attempts must be at least 1 (1: never try again).")
    try:
        urlpaths.check(config.notebook_urlpath)
    except ValueError as e:
        raise ConfigError(
            f"Setting notebook/urlpath must be a path inside the notebook server such as lab or tree, "
            f"not {config.notebook_urlpath[:40]!r}: {e}."
        ) from None
    _validate_profiles(config)


def _check_base_url(config: Config, name: str, example: str) -> None:
    """ConfigError unless the setting ``name`` is an http(s) URL with no query or fragment."""
    value = getattr(config, name)
    url = urlsplit(value)
    if url.scheme not in ("http", "https") or not url.netloc or url.query or url.fragment:
        raise ConfigError(
            f"Setting {_field(name).metadata['path']} must be a base URL such as {example}, not {value!r}."
        )


def _validate_profiles(config: Config) -> None:
    """Each profile between the smallest notebook and the maxima (notebook/max_*); the default
    one of them, for everyone."""
    max_memory = config.bytes_of("notebook_max_memory")
    for p in config.profiles_list:
        where = f"Setting profiles/list, profile {p.name}"
        if not MIN_NOTEBOOK_MEMORY <= p.memory <= max_memory:
            raise ConfigError(
                f"{where}: memory must be between {units.format_size(MIN_NOTEBOOK_MEMORY)} and notebook/max_memory "
                f"({units.format_size(max_memory)}), not {units.format_size(p.memory)}: raise notebook/max_memory "
                "or lower the profile."
            )
        if not MIN_NOTEBOOK_CPUS <= p.cpus <= config.notebook_max_cpus:
            raise ConfigError(
                f"{where}: cpus must be between {MIN_NOTEBOOK_CPUS:g} and notebook/max_cpus "
                f"({config.notebook_max_cpus:g}), not {p.cpus:g}: raise notebook/max_cpus or lower the profile."
            )
    if config.profiles_default:
        default = config.profile(config.profiles_default)
        if default is None:
            names = [p.name for p in config.profiles_list]
            there = f"one of {', '.join(names)}" if names else "empty, as profiles/list defines none"
            raise ConfigError(
                f"Setting profiles/default names the profile {config.profiles_default!r}, which profiles/list "
                f"does not define: make it {there}."
            )
        if default.groups:
            raise ConfigError(
                f"Setting profiles/default names the profile {default.name}, which is for some groups only: "
                "the default is everyone's, so name a profile without groups."
            )


def load(path: str | os.PathLike | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``config.yml`` (``path``, else ``$BOOKLAB_CONFIG``, else ./config.yml when it
    exists), apply environment overrides and validate the result."""
    environ = os.environ if environ is None else environ
    tree: Mapping[str, Any] = {}
    path = path or environ.get(CONFIG_FILE_ENV)
    if path is None and Path("config.yml").is_file():
        path = "config.yml"
    if path is not None:
        try:
            tree = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as e:
            raise ConfigError(f"Cannot read the configuration file {path}: {e.strerror}.") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"The configuration file {path} is not valid YAML: {e}.") from e
        if not isinstance(tree, Mapping):
            raise ConfigError(f"The configuration file {path} must hold a mapping of settings.")
    values = {}
    for f in dataclasses.fields(Config):
        raw, origin = _lookup(tree, f.metadata["path"]), f"in {path}"
        for var in filter(None, (f.metadata["alias"], env_name(f))):
            if var in environ:
                raw, origin = environ[var], f"from {var}"
        if raw is not None:
            values[f.name] = _convert(f, raw, origin)
    for name, what in SECRET_FILES.items():
        _read_from_file(values, name, what)
    _name_images_under_registry(values)
    config = Config(**values)
    _validate(config)
    return config


def _read_from_file(values: dict[str, Any], name: str, what: tuple[str, str]) -> None:
    """Fill the secret setting ``name`` from the file its ``<name>_file`` setting names, if set."""
    path = values.get(f"{name}_file")
    if not path:
        return
    setting, file_setting = _field(name).metadata["path"], _field(f"{name}_file").metadata["path"]
    if values.get(name):
        raise ConfigError(
            f"Settings {setting} and {file_setting} are both set: keep only one "
            f"({file_setting} keeps the secret out of the environment)."
        )
    values[name] = _read_secret_file(path, file_setting, what)


def _read_secret_file(path: str, setting: str, what: tuple[str, str]) -> str:
    """The secret in the file ``path`` (surrounding white space left out), which only its owner may read;
    ``what``: the file's and the secret's names in a message (``secret key``, ``key``)."""
    file_name, secret_name = what
    try:
        with open(path, encoding="utf-8") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & 0o077:
                raise ConfigError(
                    f"Setting {setting} names {path}, which others may read or write (mode "
                    f"{mode & 0o777:04o}): make it readable by its owner only, with chmod 600 {path}."
                )
            secret = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or "it is not UTF-8 text"
        raise ConfigError(f"Cannot read the {file_name} file {path} (setting {setting}): {reason}.") from None
    if not secret:
        raise ConfigError(f"The {file_name} file {path} (setting {setting}) is empty: put the {secret_name} in it.")
    return secret


def _name_images_under_registry(values: dict[str, Any]) -> None:
    """With images/registry, Booklab's images are named under it (build/image_prefix is it), so that a
    commit's image has one name on every runner host."""
    registry = values.get("images_registry", "").strip().rstrip("/")
    if not registry:
        return
    host = registry.split("/")[0]
    if "/" not in registry or not ("." in host or ":" in host or host == "localhost"):
        raise ConfigError(
            "Setting images/registry must be a registry host and a path, such as registry.example.org/booklab "
            f"or 127.0.0.1:5000/booklab, not {registry!r}."
        )
    prefix = values.get("image_prefix")
    if prefix and prefix not in (registry, _field("image_prefix").default):  # config.yml lists the default
        raise ConfigError(
            f"Settings build/image_prefix ({prefix}) and images/registry ({registry}) are both set: with a "
            "registry, images are named under it, so keep only images/registry."
        )
    values["images_registry"] = values["image_prefix"] = registry
