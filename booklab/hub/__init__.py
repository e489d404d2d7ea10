"""What Booklab puts inside a site's own JupyterHub (``launch/target: jupyterhub``): the spawner that starts
Booklab's images as users' named servers, and the image grants it checks. The hub imports these; nothing of
Booklab's state, Celery or the web tier is needed there."""
