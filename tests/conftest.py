pytest_plugins = ["tests.fixtures.services", "tests.fixtures.gitlab", "tests.fixtures.pipeline", "tests.fixtures.traefik", "tests.fixtures.web"]
