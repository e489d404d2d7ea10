"""Booklab's Celery tasks, each thin: one per step of a run (:mod:`booklab.tasks.pipeline`)
and the save (:mod:`booklab.tasks.saving`). The app, the queues and the messages that start
them are in :mod:`booklab.dispatch`."""
