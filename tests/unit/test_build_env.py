"""The environment repo2docker runs with holds none of Booklab's settings or secrets."""

from booklab.pipeline import builder


def test_the_build_environment_holds_no_booklab_setting_and_no_secret(monkeypatch):
    monkeypatch.setenv("BOOKLAB_SECRET_KEY", "the-runners-secret")
    monkeypatch.setenv("BOOKLAB_REDIS_URL", "redis://:a-password@redis:6379/0")
    monkeypatch.setenv("BOOKLAB_GITLAB_CONSUMER_SECRET", "oauth-secret")
    monkeypatch.setenv("REDIS_URL", "redis://:a-password@redis:6379/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:a-password@redis:6379/0")
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    env = builder._child_env()
    assert not [name for name in env if name.startswith("BOOKLAB_")]
    assert not [
        name
        for name, value in env.items()
        if any(secret in value for secret in ("a-password", "the-runners-secret", "oauth-secret"))
    ]
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"  # repo2docker still reaches the engine
    assert set(env) <= builder._KEPT_ENV | {"DOCKER_HOST", "PYTHONUNBUFFERED"}
