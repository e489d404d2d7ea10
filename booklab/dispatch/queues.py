"""The Celery queues (Redis lists of the broker) and the one rule they serve: a runner takes
one deployment at a time, from the shared queue or from its host's."""

from __future__ import annotations

#: the queue every idle runner consumes: the first step of each run
DEPLOYMENTS_QUEUE = "deployments"

#: tasks a runner works at once: 1 runner > 1 notebook
CONCURRENCY = 1

#: the first step of every run, from whichever queue: the runner that receives it takes no other run meanwhile
#: (:mod:`booklab.runner.worker`)
FIRST_STEP = "booklab.provision_key"


def runner_queue(runner_name: str) -> str:
    """The queue only this runner consumes: the later steps of its run, and its saves."""
    return f"runner.{runner_name}"


def host_queue(host: str) -> str:
    """The queue the idle runners of the Docker host ``host`` consume besides the shared one: first steps
    placed there because the host holds their image (:mod:`booklab.dispatch.placement`)."""
    return f"{DEPLOYMENTS_QUEUE}.{host}"


def shared_queues(host: str) -> list[str]:
    """The queues an idle runner of ``host`` (empty: not known yet) takes deployments from."""
    return [DEPLOYMENTS_QUEUE, host_queue(host)] if host else [DEPLOYMENTS_QUEUE]


def is_host_queue(queue: str) -> bool:
    return queue.startswith(f"{DEPLOYMENTS_QUEUE}.")
