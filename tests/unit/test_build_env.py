"""The repo2docker process of a build holds none of Booklab's settings or secrets in its environment,
even one started ahead of its build while the runner holds them."""

from pathlib import Path

from booklab.pipeline.r2d_process import Repo2docker


def test_the_build_environment_holds_no_booklab_setting_and_no_secret(monkeypatch):
    monkeypatch.setenv("BOOKLAB_SECRET_KEY", "the-runners-secret")
    monkeypatch.setenv("BOOKLAB_REDIS_URL", "redis://:a-password@redis:6379/0")
    monkeypatch.setenv("BOOKLAB_GITLAB_CONSUMER_SECRET", "oauth-secret")
    monkeypatch.setenv("REDIS_URL", "redis://:a-password@redis:6379/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:a-password@redis:6379/0")
    monkeypatch.setenv("DOCKER_HOST", "unix:///var/run/docker.sock")
    process = Repo2docker()
    try:
        raw = Path(f"/proc/{process.process.pid}/environ").read_bytes()
        cwd = Path(f"/proc/{process.process.pid}/cwd").resolve()
    finally:
        process.close()
    env = dict(entry.split("=", 1) for entry in raw.decode().split("\0") if entry)
    assert not [name for name in env if name.startswith("BOOKLAB_")]
    assert not [
        name
        for name, value in env.items()
        if any(secret in value for secret in ("a-password", "the-runners-secret", "oauth-secret"))
    ]
    assert env["DOCKER_HOST"] == "unix:///var/run/docker.sock"  # repo2docker still reaches the engine
    assert set(env) <= {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "DOCKER_HOST", "PYTHONUNBUFFERED"}
    assert cwd.name.startswith("booklab-build-") and not cwd.exists()  # its own empty directory, gone after
