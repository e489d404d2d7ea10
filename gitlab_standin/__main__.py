"""``python -m gitlab_standin --data DIR [--port P] [--user NAME ...] [--project PATH ...]
[--redirect-uri URI]``: run a GitLab stand-in for a local demo until interrupted.

Every ``--user`` becomes Maintainer of every ``--project``; their passwords and tokens, and
the OAuth client of ``--redirect-uri``, are logged at startup.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from gitlab_standin.server import GitLabStandIn
from gitlab_standin.store import MAINTAINER

log = logging.getLogger("gitlab_standin")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gitlab_standin", description=__doc__)
    parser.add_argument("--data", required=True, help="data directory (parents world-searchable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument("--ssh-port", type=int, default=0, help="SSH port (default: a free one)")
    parser.add_argument("--user", action="append", default=[], help="create this user (repeatable)")
    parser.add_argument("--project", action="append", default=[], help="create this project (repeatable)")
    parser.add_argument("--redirect-uri", help="register an OAuth application with this callback")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with GitLabStandIn(args.data, args.host, args.port, args.ssh_port) as gitlab:
        for username in args.user:
            user = gitlab.add_user(username)
            log.info("user %s password %s token %s", username, user.password, user.token)
        for path in args.project:
            gitlab.add_project(path, dict.fromkeys(args.user, MAINTAINER))
            log.info("project %s: %s", path, gitlab.ssh_url(path))
        if args.redirect_uri:
            client_id, secret = gitlab.add_oauth_app(args.redirect_uri)
            log.info("OAuth application: client id %s secret %s", client_id, secret)
        stopping.wait()


if __name__ == "__main__":
    main()
