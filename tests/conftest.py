"""Fixtures for every test, and the markers each test gets from the fixtures it uses."""

import pytest

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.gitlab",
    "tests.fixtures.pipeline",
    "tests.fixtures.traefik",
    "tests.fixtures.web",
    "tests.fixtures.hosts",
    "tests.fixtures.hub",
]

#: fixtures that start or talk to a Docker Engine
DOCKER = {"docker_daemon", "docker_engine"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & DOCKER:
            item.add_marker(pytest.mark.docker)
        if "browser" in fixtures:
            item.add_marker(pytest.mark.browser)
