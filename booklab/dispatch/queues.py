"""The Celery queues (Redis lists of the broker) and the one rule they serve: a runner takes
one deployment at a time."""

from __future__ import annotations

#: the queue every idle runner consumes: the first step of each run
DEPLOYMENTS_QUEUE = "deployments"

#: tasks a runner works at once: 1 runner > 1 notebook
CONCURRENCY = 1


def runner_queue(runner_name: str) -> str:
    """The queue only this runner consumes: the later steps of its run, and its saves."""
    return f"runner.{runner_name}"
