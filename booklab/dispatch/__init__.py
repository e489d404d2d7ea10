"""How work reaches the runners, through Celery over Redis: the app and its settings, the
queues, where each message goes, and the messages Booklab sends (a run's chain, a save).

The tasks themselves are in :mod:`booklab.tasks`; nothing here imports them, so the web
tier, the steps and the runner send work by task name without loading the pipeline.
"""
