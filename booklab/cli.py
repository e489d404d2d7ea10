"""The ``booklab`` command: one entry point for every role.

``booklab web`` serves the web tier (gunicorn); ``booklab runner`` starts a runner;
``booklab config`` lists every setting with its default, environment variable and help.
A bad setting stops them with one sentence.

``booklab deploy PATH --ref BRANCH [--save-back] [--follow] [--json]``, ``booklab status``,
``booklab stop DEPLOYMENT [--discard] [--no-wait]``, ``booklab save DEPLOYMENT`` and
``booklab retry DEPLOYMENT [--follow]`` and, for operators, ``booklab admin`` talk to the web
tier's JSON API (``--url`` or ``BOOKLAB_URL``),
authenticated by a GitLab personal access token (``BOOKLAB_GITLAB_TOKEN``, or
``--gitlab-token``, which other users of the machine can see in the process list).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from booklab import admin_cli
from booklab import config as config_module
from booklab.client import BooklabClient
from booklab.errors import ApiError, ConfigError
from booklab.phases import Phase, SaveState
from booklab.scrub import scrub

#: exit status when the deployment failed or was stopped, or the web tier refused
FAILED = 1
#: exit status for a missing or invalid setting or option
MISCONFIGURED = 2


def _runner(args: argparse.Namespace) -> int:
    # imported here: Celery and Docker's client take a while to load, and only a runner needs them
    from booklab.runner.worker import run_worker

    config = config_module.load(args.config)
    config.require("secret_key")
    run_worker(config, name=args.name, loglevel=args.loglevel)
    return 0


def _config(args: argparse.Namespace) -> int:
    current = config_module.load(args.config)
    for f in config_module.Config.settings():
        value = getattr(current, f.name)
        shown = "<set>" if f.name in config_module.SECRETS and value else value
        if isinstance(shown, str):
            shown = scrub(shown, current)  # a password in a URL (redis/url's)
        alias = f" or {f.metadata['alias']}" if f.metadata["alias"] else ""
        print(f"{f.metadata['path']} = {shown!r}\n    {f.metadata['help']} (env {config_module.env_name(f)}{alias})")
    return 0


def _web(args: argparse.Namespace) -> int:
    # imported here: Flask and gunicorn take a while to load, and only the web tier needs them
    from booklab.web.serve import serve

    config = config_module.load(args.config)
    options: dict[str, Any] = {}
    if args.bind:
        options["bind"] = [args.bind]
    if args.workers:
        options["workers"] = args.workers
    serve(config, **options)
    return 0


def _client(args: argparse.Namespace):
    url = args.url or os.environ.get("BOOKLAB_URL", "")
    token = args.gitlab_token or os.environ.get("BOOKLAB_GITLAB_TOKEN", "")
    if not url:
        raise ConfigError("Name the web tier with --url or BOOKLAB_URL (for example http://localhost:8080).")
    if not token:
        raise ConfigError(
            "Give a GitLab personal access token (scope api) in BOOKLAB_GITLAB_TOKEN or with --gitlab-token."
        )
    return BooklabClient(url, token)


def _out(line: str) -> None:
    sys.stdout.write(printable(line) + "\n")
    sys.stdout.flush()


def printable(text: str) -> str:
    """``text`` with every character a terminal could take for a command (escape sequences, C1
    controls such as U+009B, bidirectional overrides) written as its escape: what the CLI prints
    holds other people's branch names and a repository's build output."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


def _notebook_link(event: dict[str, Any]) -> str:
    """The notebook's address, at the page its repository asks to open (``urlpath``)."""
    url = urlsplit(event.get("url", "") + event.get("urlpath", ""))
    if not event.get("token"):
        return urlunsplit(url)
    query = "&".join(filter(None, [url.query, urlencode({"token": event["token"]})]))
    return urlunsplit(url._replace(query=query))


def _deploy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        created = client.deploy(
            args.path, args.ref, save_back=args.save_back, rebuild=args.rebuild, profile=args.profile or ""
        )
        return _report(client, created, args)


def _retry(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _report(client, client.retry(args.deployment, rebuild=args.rebuild, profile=args.profile), args)


def _profiles(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = client.profiles()
    if args.json:
        _out(json.dumps(found))
        return 0
    if not found["profiles"]:
        _out("This Booklab offers no machine profiles: notebooks get its standard machine.")
    for p in found["profiles"]:
        default = " (default)" if p["name"] == found["default"] else ""
        _out(f"{p['summary']}{default}" + (f"  {p['description']}" if p["description"] else ""))
    return 0


def _report(client, created: dict[str, Any], args: argparse.Namespace) -> int:
    """Say what was launched (or joined), then with ``--follow`` its events until the end."""
    if not args.follow:
        if args.json:
            _out(json.dumps(created))
        else:
            verb = "Launched" if created.get("started") else "Joined"
            _out(
                f"{verb} {created['id']} ({created['status']}). Follow it on {created['page']} "
                f"or with `booklab deploy {created['project']} --ref {created['ref']} --follow`."
            )
        return 0
    if not args.json:
        _out(
            f"Deploying {created['project']} at {created['ref']} as {created['user']} "
            f"(deployment {created['id']}); page: {created['page']}"
        )
    phase, last = None, None
    run = created.get("requested_run")
    for _, event in client.events(
        client.events_url(created["project"], created["ref"]), after=f"{run}.0" if run else ""
    ):
        last = event
        if args.json:
            _out(json.dumps(event))
            continue
        if event["phase"] != phase:
            phase = event["phase"]
            _out(f"==> {phase}")
        for line in event.get("message", "").splitlines():
            _out(f"    {line}")
    if last is None:
        print("booklab: the event stream ended without news: check `booklab status`.", file=sys.stderr)
        return FAILED
    if last["phase"] == Phase.READY.value:
        if not args.json:
            _out(f"Your notebook is ready: {_notebook_link(last)}")
        return 0
    if not args.json:
        print(f"booklab: the deployment {last['phase']}: {last.get('message', '').strip()}", file=sys.stderr)
    return FAILED


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        found = [client.deployment(args.deployment)] if args.deployment else client.deployments()
    if args.json:
        for item in found:
            _out(json.dumps(item))
        return 0
    if not found:
        _out("You have no deployments.")
    for item in found:
        where = item.get("url") or (f"position {item['position']} in the queue" if item.get("position") else "")
        profile = f"profile {item['profile']}" if item.get("profile") else ""
        _out("  ".join(filter(None, (item["id"], item["status"], profile, where))))
        if item.get("save"):
            _out(f"    {_save_line(item['save'])}")
        if item.get("kept"):
            _out(f"    Changes kept for you: booklab save --download {item['id']}")
    return 0


def _save_line(save: dict[str, Any]) -> str:
    """The last save of a deployment in one line: its message, which names the branch and
    the merge-request link once saved."""
    return save.get("message") or save["state"]


def _stop(args: argparse.Namespace) -> int:
    with _client(args) as client:
        stopped = client.stop(args.deployment, discard=args.discard)
        saving = stopped.get("save", {}).get("state") == SaveState.SAVING and not args.discard
        _out(
            f"Stopping {stopped['id']} (it was {stopped['was']})."
            + (" Saving your changes to GitLab first..." if saving else "")
        )
        if args.no_wait:
            return 0
        now = client.wait_stopped(args.deployment, stopped.get("run"))
    save = now.get("save", {})
    if now.get("run") == stopped.get("run") and now["status"] in (Phase.READY.value, Phase.STOPPING.value):
        if saving and save.get("state") == SaveState.FAILED:
            print(f"booklab: {_save_line(save)} (`booklab stop --discard` stops it without saving.)", file=sys.stderr)
        else:
            print(f"booklab: {stopped['id']} is still {now['status']}: check `booklab status`.", file=sys.stderr)
        return FAILED
    if saving and save and now.get("run") == stopped.get("run"):
        _out(_save_line(save))
    _out(f"Stopped {stopped['id']}.")
    return 0


def _save(args: argparse.Namespace) -> int:
    if args.download:
        return _download(args)
    with _client(args) as client:
        client.save(args.deployment)
        _out(f"Saving the changes of {args.deployment} to GitLab...")
        current = client.wait_saved(args.deployment)
    save = current.get("save", {})
    if args.json:
        _out(json.dumps(save))
    elif save.get("state") == SaveState.FAILED:
        print(f"booklab: {_save_line(save)}", file=sys.stderr)
    else:
        _out(_save_line(save))
    return FAILED if save.get("state") in (SaveState.FAILED, SaveState.SAVING) else 0


def _download(args: argparse.Namespace) -> int:
    """Write the changes kept of a save that was given up to a new file."""
    with _client(args) as client:
        found, data = client.kept(args.deployment, args.run)
    target = args.output or os.path.basename(str(found.get("filename") or "")).lstrip(".") or "booklab-changes.tar.gz"
    try:
        with open(target, "xb") as out:
            out.write(data)
    except FileExistsError:
        print(f"booklab: {target} exists already: name another file with --output.", file=sys.stderr)
        return FAILED
    _out(f"Wrote the {found['files']} changed files of run {found['run']} to {target}.")
    _out(f"They were kept because: {found['reason']}")
    return 0


def _logs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        sys.stdout.write(printable(client.log(args.deployment, args.run)))
    return 0


def _api_options(argument_default: Any = None) -> argparse.ArgumentParser:
    """The options of every command that talks to the web tier; ``argument_default``
    ``argparse.SUPPRESS`` for a sub-subcommand's, which must not undo its parent's."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argument_default)
    common.add_argument("--url", help="base URL of Booklab's web tier (default: $BOOKLAB_URL)")
    common.add_argument(
        "--gitlab-token",
        help="GitLab personal access token (default: $BOOKLAB_GITLAB_TOKEN, "
        "the safer way: options show in the process list)",
    )
    return common


def _rebuild_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--rebuild",
        action="store_true",
        help="build the image again, every layer (a dependency moved), and replace it; a running notebook is joined",
    )


def _profile_option(command: argparse.ArgumentParser, default: str) -> None:
    command.add_argument(
        "--profile",
        metavar="NAME",
        help=f"the machine profile to run on (`booklab profiles` lists yours; default: {default})",
    )


def _follow_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--follow", action="store_true", help="follow the deployment until it is ready or failed")
    command.add_argument("--json", action="store_true", help="print JSON: one event per line with --follow")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="booklab", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="configuration file (default: $BOOKLAB_CONFIG or ./config.yml)")
    sub = p.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("runner", help="start one runner (a Celery worker serving one notebook at a time)")
    runner.add_argument("--name", help="runner name (default: runner/name, else a unique one)")
    runner.add_argument("--loglevel", default="INFO")
    runner.set_defaults(func=_runner)
    show = sub.add_parser("config", help="list every setting with its current value")
    show.set_defaults(func=_config)
    web = sub.add_parser("web", help="serve the web tier with gunicorn")
    web.add_argument("--bind", help="HOST:PORT to listen on (default: web/host and web/port)")
    web.add_argument("--workers", type=int, help="worker processes (default: web/workers)")
    web.set_defaults(func=_web)
    common = _api_options()
    deploy = sub.add_parser("deploy", parents=[common], help="launch a project's branch (or join its deployment)")
    deploy.add_argument("path", metavar="PATH", help="GitLab project path, e.g. group/project")
    deploy.add_argument("--ref", required=True, metavar="BRANCH", help="branch to deploy")
    deploy.add_argument(
        "--save-back",
        action="store_true",
        help="when the notebook ends, push its changes to a new branch booklab/<you>/<date>",
    )
    _rebuild_option(deploy)
    _profile_option(deploy, "the one the repository's .booklab.yml asks for, else the operator's")
    _follow_options(deploy)
    deploy.set_defaults(func=_deploy)
    retry = sub.add_parser("retry", parents=[common], help="launch one of your failed or stopped deployments again")
    retry.add_argument("deployment", metavar="DEPLOYMENT", help="a deployment id <path>:<branch>:<user>")
    _rebuild_option(retry)
    _profile_option(retry, "the one picked last time")
    _follow_options(retry)
    retry.set_defaults(func=_retry)
    profiles = sub.add_parser("profiles", parents=[common], help="list the machine profiles you may launch on")
    profiles.add_argument("--json", action="store_true", help="print them as JSON")
    profiles.set_defaults(func=_profiles)
    status = sub.add_parser("status", parents=[common], help="list your deployments (or show one)")
    status.add_argument("deployment", nargs="?", metavar="DEPLOYMENT", help="a deployment id <path>:<branch>:<user>")
    status.add_argument("--json", action="store_true", help="print one JSON object per deployment")
    status.set_defaults(func=_status)
    stop = sub.add_parser("stop", parents=[common], help="stop one of your deployments")
    stop.add_argument("deployment", metavar="DEPLOYMENT", help="a deployment id <path>:<branch>:<user>")
    stop.add_argument("--discard", action="store_true", help="do not save the notebook's changes to GitLab")
    stop.add_argument(
        "--no-wait",
        action="store_true",
        help="return once the stop is asked for, without waiting until the notebook is gone",
    )
    stop.set_defaults(func=_stop)
    save = sub.add_parser(
        "save", parents=[common], help="push a running notebook's changes to a new GitLab branch now, and wait"
    )
    save.add_argument("deployment", metavar="DEPLOYMENT", help="a deployment id <path>:<branch>:<user>")
    save.add_argument("--json", action="store_true", help="print the save as JSON")
    save.add_argument(
        "--download",
        action="store_true",
        help="instead of saving, download the changes kept when a save was given up (a .tar.gz)",
    )
    save.add_argument("--run", type=int, help="with --download: the run whose changes to download (default: the last)")
    save.add_argument("--output", metavar="FILE", help="with --download: the file to write (default: its own name)")
    save.set_defaults(func=_save)
    logs = sub.add_parser("logs", parents=[common], help="print the whole log of a deployment's newest run")
    logs.add_argument("deployment", metavar="DEPLOYMENT", help="a deployment id <path>:<branch>:<user>")
    logs.add_argument("--run", type=int, help="the run whose log to print (default: the newest)")
    logs.set_defaults(func=_logs)
    admin_cli.add_commands(sub, common, _api_options(argparse.SUPPRESS), _client, _out)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"booklab: {e}", file=sys.stderr)
        return MISCONFIGURED
    except ApiError as e:
        print(f"booklab: {e}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
