"""A runner's two processes and how long each waits for GitLab: its main process, where its checks beat its
heartbeat, briefly; its pool process, which runs a launch's steps, ``gitlab/timeout``, with the runner's own
configuration (``booklab runner --config`` reads it from a file of its choice)."""

from __future__ import annotations

import dataclasses

from celery.signals import worker_process_init

from booklab.context import Context, get_context, set_context
from booklab.dispatch.app import configure
from booklab.runner.supervisor import GITLAB_WAIT


def test_a_pool_process_acts_with_its_runners_configuration_and_waits_for_gitlab_as_a_step_does(redis_ctx):
    config = dataclasses.replace(redis_ctx.config, gitlab_timeout=40.0)  # not what the environment says
    configure(config)
    checks = Context(config, gitlab_wait=GITLAB_WAIT)
    set_context(checks)  # the runner's main process
    assert get_context().gitlab_timeout == GITLAB_WAIT

    worker_process_init.send(sender=None)  # its pool process starts
    steps = get_context()
    assert steps.config is config
    assert steps.gitlab_timeout == 40.0
    for context in (checks, steps):
        context.close()
