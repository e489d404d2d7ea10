"""Deploy keys through python-gitlab: add, list, get, delete, GitLab's validation and
permission answers, and the request log tests use to prove no key was created."""

from __future__ import annotations

import subprocess

import gitlab as python_gitlab
import pytest
import requests

from gitlab_standin.store import DEVELOPER, MAINTAINER


@pytest.fixture
def public_key(tmp_path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "booklab@test", "-f", str(tmp_path / "id")], check=True
    )
    return (tmp_path / "id.pub").read_text().strip()


def fingerprint_sha256(public_key: str, tmp_path) -> str:
    (tmp_path / "key.pub").write_text(public_key + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "key.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.split()[1]


def test_add_list_get_delete(gitlab, public_key, tmp_path):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/book", {"alice": MAINTAINER})
    with python_gitlab.Gitlab(gitlab.url, private_token=alice.token) as gl:
        project = gl.projects.get("lab/book")
        created = project.keys.create(
            {"title": "booklab deploy", "key": public_key, "expires_at": "2099-01-31T00:00:00Z"}
        )
        assert created.title == "booklab deploy" and created.key == public_key
        assert created.can_push is False and created.expires_at == "2099-01-31T00:00:00.000Z"
        assert created.fingerprint_sha256 == fingerprint_sha256(public_key, tmp_path)
        assert len(created.fingerprint.split(":")) == 16
        assert [k.id for k in project.keys.list(get_all=True)] == [created.id]
        assert project.keys.get(created.id).title == "booklab deploy"
        assert gitlab.deploy_keys("lab/book") == [
            {name: value for name, value in created.attributes.items() if name != "project_id"}
        ]
        project.keys.delete(created.id)
        assert project.keys.list(get_all=True) == []
        with pytest.raises(python_gitlab.GitlabDeleteError) as again:
            project.keys.delete(created.id)
    assert again.value.response_code == 404
    assert gitlab.deploy_keys("lab/book") == []
    log = [(r.method, r.path, r.status) for r in gitlab.request_log() if "deploy_keys" in r.path]
    assert ("POST", f"/api/v4/projects/{project.id}/deploy_keys", 201) in log
    assert ("DELETE", f"/api/v4/projects/{project.id}/deploy_keys/{created.id}", 204) in log


def test_form_encoded_add_with_can_push(gitlab, public_key):
    alice = gitlab.add_user("alice")
    project = gitlab.add_project("lab/book", {"alice": MAINTAINER})
    response = requests.post(
        f"{gitlab.url}/api/v4/projects/{project.id}/deploy_keys",
        data={"title": "ci", "key": public_key, "can_push": "true"},
        headers={"PRIVATE-TOKEN": alice.token},
        timeout=10,
    )
    assert response.status_code == 201
    assert response.json()["can_push"] is True
    assert [(k["title"], k["can_push"]) for k in gitlab.deploy_keys("lab/book")] == [("ci", True)]


@pytest.mark.parametrize("key", ["ssh-ed25519 not-base64!", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "hello"])
def test_invalid_key_is_400(gitlab, key):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/book", {"alice": MAINTAINER})
    response = requests.post(
        f"{gitlab.url}/api/v4/projects/lab%2Fbook/deploy_keys",
        json={"title": "bad", "key": key},
        headers={"PRIVATE-TOKEN": alice.token},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json() == {"message": {"key": ["is invalid"]}}
    assert gitlab.deploy_keys("lab/book") == []


def test_developer_is_forbidden(gitlab, public_key):
    dev = gitlab.add_user("dev")
    gitlab.add_project("lab/book", {"dev": DEVELOPER})
    with python_gitlab.Gitlab(gitlab.url, private_token=dev.token) as gl:
        project = gl.projects.get("lab/book")
        with pytest.raises(python_gitlab.GitlabCreateError) as create:
            project.keys.create({"title": "nope", "key": public_key})
        with pytest.raises(python_gitlab.GitlabListError) as listing:
            project.keys.list(get_all=True)
    assert create.value.response_code == listing.value.response_code == 403
    assert create.value.error_message == "403 Forbidden"
    assert gitlab.deploy_keys("lab/book") == []
    assert not [r for r in gitlab.request_log() if r.method == "POST" and r.status == 201]


def test_same_key_on_two_projects_is_one_key(gitlab, public_key):
    alice = gitlab.add_user("alice")
    gitlab.add_project("lab/a", {"alice": MAINTAINER})
    gitlab.add_project("lab/b", {"alice": MAINTAINER})
    with python_gitlab.Gitlab(gitlab.url, private_token=alice.token) as gl:
        on_a = gl.projects.get("lab/a").keys.create({"title": "k", "key": public_key})
        on_b = gl.projects.get("lab/b").keys.create({"title": "k", "key": public_key})
        gl.projects.get("lab/a").keys.delete(on_a.id)
    assert on_a.id == on_b.id
    assert gitlab.deploy_keys("lab/a") == [] and [k["id"] for k in gitlab.deploy_keys("lab/b")] == [on_b.id]
