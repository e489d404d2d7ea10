"""Booklab's benchmark suite: ``python -m bench`` (``make bench``).

It starts the real local stack (Docker Engine, Redis, the GitLab stand-in, Traefik, the
web tier under gunicorn, real runner processes; :mod:`bench.stack`), measures each figure
of issue 6 with its floor in the same run where there is one, and writes
``BENCHMARKS.md`` (:mod:`bench.report`): median, p90 (p99 where the target is about it),
the floor, the ratio, and the machine. Benchmarks are not tests: a slow figure never fails
the run, it is only reported against its target.

One module per figure, each with ``run(stack, settings) -> list[Figure]``:

==================  ========================================================================
``relaunch``        request -> ``ready`` when the commit's image exists (:mod:`bench.relaunch`)
``first-deploy``    request -> ``ready`` for a new commit of a Dockerfile repository
``dispatch``        request accepted -> first step running on an idle runner
``route``           notebook answers -> answers through Traefik (docker labels, Redis KV)
``log-latency``     runner's log line -> event-stream client, with 200 viewers (p99)
``streams``         the web tier holding 500 open event streams: RSS, errors
``api``             ``GET /api/deployments`` requests/s with a personal access token
``redis-memory``    Redis memory per finished deployment
==================  ========================================================================
"""
