"""The ``booklab`` command: one entry point for every role.

``booklab runner`` starts a runner; ``booklab config`` lists every setting with its
default, environment variable and help. A bad setting stops it with one sentence.
"""

from __future__ import annotations

import argparse
import logging
import sys

from booklab import config as config_module
from booklab.errors import ConfigError


def _runner(args: argparse.Namespace) -> int:
    from booklab.runner import run_worker

    config = config_module.load(args.config)
    config.require("secret_key")
    run_worker(config, name=args.name, loglevel=args.loglevel)
    return 0


def _config(args: argparse.Namespace) -> int:
    current = config_module.load(args.config)
    for f in config_module.Config.settings():
        value = getattr(current, f.name)
        shown = "<set>" if f.name in ("secret_key", "gitlab_consumer_secret") and value else value
        alias = f" or {f.metadata['alias']}" if f.metadata["alias"] else ""
        print(f"{f.metadata['path']} = {shown!r}\n    {f.metadata['help']} "
              f"(env {config_module.env_name(f)}{alias})")
    return 0


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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"booklab: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
