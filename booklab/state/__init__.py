"""Deployment and runner state in Redis: key names, records, the lifecycle of runs, events,
the queue, secrets and metrics."""
