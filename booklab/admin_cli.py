"""``booklab admin``: the operator's view and actions from a terminal, through the admin API
(:mod:`booklab.web.admin`), with the operator's own GitLab token.

``booklab admin [runners|queue|deployments|images|quotas|actions] [--json]`` prints what the
page ``/admin`` shows (everything without a section); ``booklab admin stop DEPLOYMENT`` stops
any user's notebook; ``booklab admin remove-image HOST IMAGE`` has that host remove an image.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

from booklab.units import human_size

SECTIONS = ("runners", "queue", "deployments", "images", "quotas", "actions")


def add_commands(
    sub: Any,
    common: argparse.ArgumentParser,
    common_again: argparse.ArgumentParser,
    client: Callable,
    out: Callable[[str], None],
) -> None:
    """Add ``admin`` to the ``booklab`` command's subcommands: ``common`` are the API options,
    ``common_again`` the same without defaults (which would undo an option given before the
    section); ``client`` makes the API client from the parsed options, ``out`` prints a line."""
    admin = sub.add_parser("admin", parents=[common], help="operators: every runner, the queue, anyone's notebooks")
    admin.add_argument("--json", action="store_true", help="print the API's JSON")
    admin.set_defaults(func=lambda args: _show(args, client, out), section="")
    sections = admin.add_subparsers(dest="action", metavar="{" + ",".join(SECTIONS) + ",stop,remove-image}")
    for section in SECTIONS:
        shown = sections.add_parser(section, parents=[common_again], help=f"show the {section} only")
        shown.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON")
        shown.set_defaults(section=section)
    stop = sections.add_parser("stop", parents=[common_again], help="stop any user's deployment (its save back stays)")
    stop.add_argument("deployment", metavar="DEPLOYMENT", help="a deployment id <path>:<branch>:<user>")
    stop.set_defaults(func=lambda args: _stop(args, client, out))
    remove = sections.add_parser(
        "remove-image", parents=[common_again], help="have a runner host remove an image (unless it is in use)"
    )
    remove.add_argument("host", metavar="HOST", help="the runner host, as `booklab admin images` shows it")
    remove.add_argument("image", metavar="IMAGE", help="the image, <repository>:<tag>")
    remove.set_defaults(func=lambda args: _remove_image(args, client, out))


def _show(args: argparse.Namespace, client: Callable, out: Callable[[str], None]) -> int:
    with client(args) as api:
        found = api.admin(args.section)
    if args.json:
        out(json.dumps(found))
        return 0
    for section in SECTIONS:
        if section in found:
            out(f"{section.capitalize()}:")
            rows = [_LINES[section](row) for row in found[section]]
            for line in rows or ["(none)"]:
                out(f"  {line}")
    return 0


def _stop(args: argparse.Namespace, client: Callable, out: Callable[[str], None]) -> int:
    with client(args) as api:
        stopped = api.admin_stop(args.deployment)
    out(f"Stopping {stopped['id']} (it was {stopped['was']}).")
    return 0


def _remove_image(args: argparse.Namespace, client: Callable, out: Callable[[str], None]) -> int:
    with client(args) as api:
        api.admin_remove_image(args.host, args.image)
    out(f"{args.host} removes {args.image} at its next cleaning, unless a notebook uses it by then.")
    return 0


def _clock(unix_time: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(unix_time)) if unix_time else "-"


_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    "runners": lambda r: (
        f"{r['name']}  {r['host'] or '-'}  {r['state']}  beat {_clock(r['last_beat'])}"
        + (f"  serves {r['deployment']} ({r['phase']}) since {_clock(r['since'])}" if r["deployment"] else "")
    ),
    "queue": lambda q: f"{q['position']}. {q['deployment']}  waiting since {_clock(q['since'])}",
    "deployments": lambda d: (
        f"{d['id']}  {d['phase']}  run {d['run'] or '-'}"
        + (f"  profile {d['profile']}" if d["profile"] else "")
        + (f"  on {d['runner']}" if d["runner"] else "")
    ),
    "images": lambda i: (
        f"{i['host']}  {i['name']}  {human_size(i['size'])}  launched {_clock(i['last_launched'])}"
        + ("  in use" if i["in_use"] else "  removal asked" if i["removal_asked"] else "")
    ),
    "quotas": lambda q: f"{q['kind']} {q['name']}: {q['in_use']} of {q['limit'] or 'no limit'}",
    "actions": lambda a: f"{_clock(a['at'])}  {a['operator']}: {a['action']} {a['target']}",
}
