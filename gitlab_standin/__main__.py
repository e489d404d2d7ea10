"""``python -m gitlab_standin --data DIR [--port P] [--ssh-port P] [--user NAME ...]
[--project PATH ...] [--repos DIR ...] [--redirect-uri URI] [--info FILE]``: run a GitLab
stand-in for a local demo until interrupted (SIGINT or SIGTERM).

Every ``--user`` becomes Maintainer of every project. ``--project`` makes an empty project;
``--repos DIR`` serves every git repository directly in DIR as the project
``<first user>/<directory name>`` (a personal project, as on GitLab; a bare ``name.git``
gives ``name``) with all its branches and tags. ``--info FILE`` receives, once everything is
set up, a JSON object (mode 0600)
with the stand-in's addresses and SSH host key, each user's password and personal access token, the
projects with their branches, and the OAuth application of ``--redirect-uri``; without it,
the passwords, tokens and OAuth client are logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from gitlab_standin.repos import find_repositories
from gitlab_standin.server import GitLabStandIn
from gitlab_standin.store import MAINTAINER

log = logging.getLogger("gitlab_standin")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gitlab_standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data directory (parents world-searchable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (default: a free one)")
    parser.add_argument("--ssh-port", type=int, default=0, help="SSH port (default: a free one)")
    parser.add_argument("--user", action="append", default=[], help="create this user (repeatable)")
    parser.add_argument("--project", action="append", default=[], help="create this empty project (repeatable)")
    parser.add_argument(
        "--repos",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="serve every git repository in DIR as <first user>/<its name> (repeatable)",
    )
    parser.add_argument("--redirect-uri", help="register an OAuth application with this callback")
    parser.add_argument(
        "--hub-redirect-uri", help="register a JupyterHub's login application (scope read_user) with this callback"
    )
    parser.add_argument(
        "--info", type=Path, metavar="FILE", help="write addresses, credentials and projects there as JSON once ready"
    )
    args = parser.parse_args(argv)
    if args.repos and not args.user:
        parser.error("--repos needs a --user to own the projects")
    return args


def _serve_repositories(gitlab: GitLabStandIn, directories: list[Path], members: dict[str, int]) -> None:
    owner = next(iter(members))
    for directory in directories:
        for repo in find_repositories(directory):
            try:
                gitlab.import_repository(f"{owner}/{repo.name.removesuffix('.git')}", repo, members)
            except ValueError as e:
                log.warning("not serving %s: %s", repo, e)


def _write_info(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON readable by root only; atomically, so a reader that sees the
    file sees all of it."""
    temporary = path.with_name(path.name + ".tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(info, out, indent=2)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with GitLabStandIn(args.data, args.host, args.port, args.ssh_port) as gitlab:
        users = [gitlab.add_user(username) for username in args.user]
        members = dict.fromkeys(args.user, MAINTAINER)
        for path in args.project:
            gitlab.add_project(path, members)
        _serve_repositories(gitlab, args.repos, members)
        client_id, secret = gitlab.add_oauth_app(args.redirect_uri) if args.redirect_uri else ("", "")
        hub_id, hub_secret = (
            gitlab.add_oauth_app(args.hub_redirect_uri, "read_user") if args.hub_redirect_uri else ("", "")
        )
        projects = {
            p.path_with_namespace: [b.name for b in gitlab.repos.branches(p.path_with_namespace, p.default_branch)]
            for p in gitlab.store.all_projects()
        }
        info = {
            "url": gitlab.url,
            "ssh_port": gitlab.ssh_port,
            "known_hosts": gitlab.known_hosts_line,
            "users": {u.username: {"password": u.password, "token": u.token} for u in users},
            "projects": projects,
            "oauth": {"client_id": client_id, "client_secret": secret, "redirect_uri": args.redirect_uri or ""},
            "hub_oauth": {"client_id": hub_id, "client_secret": hub_secret},
        }
        for path, branches in projects.items():
            log.info("project %s (branches %s): %s", path, ", ".join(branches), gitlab.ssh_url(path))
        if args.info:
            _write_info(args.info, info)
            log.info("addresses, credentials and projects written to %s", args.info)
        else:
            for user in users:
                log.info("user %s password %s token %s", user.username, user.password, user.token)
            if client_id:
                log.info("OAuth application: client id %s secret %s", client_id, secret)
        stopping.wait()


if __name__ == "__main__":
    main()
