"""What the demo tells as it runs: which host and runner serve each notebook that turned ready, read
from the runners' records in Redis (as the operators' page shows them)."""

from __future__ import annotations

import redis

from booklab.demo.terminal import printable
from booklab.errors import InvalidDeployment
from booklab.phases import Phase
from booklab.state.deployment import Deployment
from booklab.state.records import Deployments, Runners


class ServedBy:
    """Tells of each notebook once, when it is first seen ready."""

    def __init__(self, client: redis.Redis) -> None:
        self.runners = Runners(client)
        self.deployments = Deployments(client)
        self.told: set[tuple[str, str]] = set()

    def news(self) -> list[str]:
        """A line for each notebook ready since the last call: whose, of what, on which host and runner."""
        statuses, hosts = self.deployments.all_statuses(), self.runners.hosts()
        lines = []
        for runner in self.runners.declared():
            deployment_id = self.runners.held(runner).get("deployment", "")
            if not deployment_id or statuses.get(deployment_id) is not Phase.READY:
                continue
            if (runner, deployment_id) in self.told:
                continue
            self.told.add((runner, deployment_id))
            try:
                deployment = Deployment.from_id(deployment_id)
            except InvalidDeployment:
                continue
            user, project, ref = (printable(text) for text in (deployment.user, deployment.project, deployment.ref))
            host = hosts.get(runner) or "?"
            lines.append(f"{user}'s notebook of {project} ({ref}) is served by host {host}, runner {runner}")
        return lines
