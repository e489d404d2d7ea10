"""A runner: the Celery worker that serves one notebook at a time, its supervisor, culling and recovery."""
