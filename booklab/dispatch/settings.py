"""Celery settings of Booklab's runners and of whoever sends them work.

The broker URL and visibility timeout come from Booklab's own configuration
(``redis/url``, ``broker/visibility_timeout``), set in :func:`booklab.dispatch.app.configure`.
"""

from booklab.dispatch.queues import CONCURRENCY, DEPLOYMENTS_QUEUE

# One task at a time per runner, acknowledged when done: a runner never holds a second
# deployment's message while it works on one.
worker_concurrency = CONCURRENCY
worker_prefetch_multiplier = 1
task_acks_late = True
task_reject_on_worker_lost = False
worker_disable_prefetch = True

# Messages carry only ids and strings.
task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

# The first step goes to every idle runner; the others to the runner that took it.
task_routes = ("booklab.dispatch.routing.route_step",)
task_default_queue = DEPLOYMENTS_QUEUE

# Flower shows workers and tasks from their events.
worker_send_task_events = True
task_send_sent_event = True

broker_connection_retry_on_startup = True
worker_hijack_root_logger = False
