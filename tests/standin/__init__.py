"""Tests of the GitLab stand-in itself, with real clients: python-gitlab, requests, git, ssh."""
