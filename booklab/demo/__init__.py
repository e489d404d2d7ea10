"""``make demo`` (``python -m booklab.demo``): all of Booklab on this machine, with a GitLab
stand-in and sample projects, until Ctrl-C stops it all.

:mod:`~booklab.demo.stack` starts the parts, :mod:`~booklab.demo.processes` runs and stops
the processes, :mod:`~booklab.demo.docker_host` looks after the Docker Engine, the base
image and the demo's network, :mod:`~booklab.demo.samples` makes the sample repository.
"""
