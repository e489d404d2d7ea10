"""``booklab web``: the web tier served by gunicorn.

Worker class ``gthread``: each open event stream holds one thread of a worker while it
waits for the deployment's next event (all streams of a worker share one Redis
subscription, :mod:`booklab.state.event_fanout`), so every worker gets ``web/connections``
threads and accepts as many connections. Measured here with one
worker: 500 open streams took 4 s to open, one new event reached all 500 in 0.4 s, and
the worker used about 100 MB in all. gevent did as well (0.13 s) but needs Redis,
Celery, requests and the Docker client monkey-patched, and warned that ssl was imported
before patching; threads need none of that.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from booklab.config import Config
from booklab.web import create_app

WORKER_CLASS = "gthread"
KEEPALIVE_ROOM = 100


class WebServer(BaseApplication):
    def __init__(self, config: Config, options: dict[str, Any] | None = None) -> None:
        self.booklab_config = config
        self.options = {
            "bind": [f"{config.web_host}:{config.web_port}"],
            "workers": config.web_workers,
            "worker_class": WORKER_CLASS,
            "threads": config.web_connections,
            # more connections than threads: gthread keeps idle connections alive only
            # while it has room for more, else it closes each after one answer
            "worker_connections": config.web_connections + KEEPALIVE_ROOM,
            # a stream ends with its deployment; a restart drops open streams and their
            # browsers resume them with Last-Event-ID
            "graceful_timeout": 10,
            "keepalive": 5,
            "proc_name": "booklab-web",
            "accesslog": None,
            "errorlog": "-",
            **(options or {}),
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 27: no socket in $HOME
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        return create_app(self.booklab_config)


def serve(config: Config, **options: Any) -> None:
    """Serve the web tier until stopped (SIGTERM, SIGINT)."""
    config.require("secret_key", "gitlab_consumer_key", "gitlab_consumer_secret")
    WebServer(config, options).run()
