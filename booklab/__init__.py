"""Booklab: open a private GitLab repository as a live Jupyter notebook in one click."""
