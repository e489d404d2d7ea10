"""The stand-in's groups through python-gitlab and raw requests: direct and inherited
membership, ``min_access_level``, what a non-member sees (nothing, and 404), the parent
groups GitLab names to members of a subgroup, pagination, and subgroups that need a parent."""

from __future__ import annotations

import gitlab as python_gitlab
import pytest
import requests

from gitlab_standin.store import DEVELOPER, GUEST, MAINTAINER, OWNER, REPORTER


def listed(server, user, **params) -> list[str]:
    with python_gitlab.Gitlab(server.url, private_token=user.token) as gl:
        return sorted(group.full_path for group in gl.groups.list(get_all=True, **params))


def get_group(server, user, ref: str) -> requests.Response:
    return requests.get(f"{server.url}/api/v4/groups/{ref}", headers={"PRIVATE-TOKEN": user.token}, timeout=10)


@pytest.fixture
def department(gitlab):
    """dept (alice Reporter) > dept/lab (bob Developer) > dept/lab/course (alice Maintainer), and other."""
    alice, bob = gitlab.add_user("alice"), gitlab.add_user("bob")
    gitlab.add_user("mallory")
    gitlab.add_group("dept", {"alice": REPORTER})
    gitlab.add_group("dept/lab", {"bob": DEVELOPER})
    gitlab.add_group("dept/lab/course", {"alice": MAINTAINER})
    gitlab.add_group("other", {"mallory": OWNER})
    return alice, bob


def test_direct_and_inherited_members_by_level(gitlab, department):
    alice, bob = department
    everything = ["dept", "dept/lab", "dept/lab/course"]
    assert listed(gitlab, alice) == everything
    assert listed(gitlab, alice, all_available=True) == everything  # every group is private
    for level, paths in {
        GUEST: everything,
        REPORTER: everything,  # inherited from dept
        DEVELOPER: ["dept/lab/course"],  # the higher of its direct and inherited levels
        MAINTAINER: ["dept/lab/course"],
        OWNER: [],
    }.items():
        assert listed(gitlab, alice, min_access_level=level) == paths, level
    assert listed(gitlab, bob, min_access_level=GUEST) == ["dept/lab", "dept/lab/course"]
    assert listed(gitlab, bob, min_access_level=GUEST, top_level_only=True) == []

    gitlab.set_group_member("dept", "alice", None)
    assert listed(gitlab, alice, min_access_level=GUEST) == ["dept/lab/course"]


def test_group_json_by_id_and_by_encoded_path(gitlab, department):
    alice, _ = department
    [listed_lab] = requests.get(
        f"{gitlab.url}/api/v4/groups",
        params={"search": "lab", "min_access_level": REPORTER, "order_by": "path", "sort": "desc", "per_page": 1},
        headers={"PRIVATE-TOKEN": alice.token},
        timeout=10,
    ).json()
    dept = get_group(gitlab, alice, "dept").json()
    lab = get_group(gitlab, alice, "dept%2Flab").json()
    assert {name: lab[name] for name in listed_lab} == listed_lab
    assert get_group(gitlab, alice, str(lab["id"])).json() == lab
    assert {
        name: lab[name]
        for name in ("name", "path", "full_path", "full_name", "parent_id", "visibility", "web_url", "projects")
    } == {
        "name": "lab",
        "path": "lab",
        "full_path": "dept/lab",
        "full_name": "dept / lab",
        "parent_id": dept["id"],
        "visibility": "private",
        "web_url": f"{gitlab.url}/groups/dept/lab",
        "projects": [],
    }
    assert dept["parent_id"] is None

    project = gitlab.add_project("dept/lab/notes")
    assert get_group(gitlab, alice, "dept%2Flab").json()["projects"][0]["id"] == project.id
    with python_gitlab.Gitlab(gitlab.url, private_token=alice.token) as gl:
        notes = gl.projects.get("dept/lab/notes")  # a project of a group of hers
    assert notes.namespace["id"] == lab["id"]
    assert notes.permissions == {
        "project_access": None,
        "group_access": {"access_level": REPORTER, "notification_level": 3},
    }


def test_a_non_member_sees_nothing(gitlab, department):
    mallory = gitlab.store.user("mallory")
    assert listed(gitlab, mallory) == listed(gitlab, mallory, owned=True) == ["other"]
    for ref in ("dept", "dept%2Flab", str(gitlab.store.group("dept/lab").id), "missing"):
        response = get_group(gitlab, mallory, ref)
        assert response.status_code == 404, ref
        assert response.json() == {"message": "404 Group Not Found"}


def test_parent_groups_are_named_to_subgroup_members_but_stay_closed(gitlab, department):
    """As GitLab: without min_access_level a member of dept/lab is listed dept too, though
    dept opens to them only once they reach a project below it."""
    _, bob = department
    assert listed(gitlab, bob) == ["dept", "dept/lab", "dept/lab/course"]
    assert get_group(gitlab, bob, "dept").status_code == 404
    gitlab.add_project("dept/lab/notes")
    assert get_group(gitlab, bob, "dept").json()["full_path"] == "dept"


def test_project_members_are_named_the_groups_above(gitlab):
    carol = gitlab.add_user("carol")
    gitlab.add_group("dept")
    gitlab.add_group("dept/lab")
    gitlab.add_project("dept/lab/notes", {"carol": DEVELOPER})
    assert listed(gitlab, carol) == ["dept", "dept/lab"]
    assert listed(gitlab, carol, min_access_level=GUEST) == []
    assert get_group(gitlab, carol, "dept%2Flab").status_code == 200


def test_pagination_headers_and_search(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.add_group("dept", {"alice": GUEST})
    for number in range(24):
        gitlab.add_group(f"dept/course-{number:02}")
    response = requests.get(
        f"{gitlab.url}/api/v4/groups",
        params={"min_access_level": GUEST, "page": 2, "per_page": 10},
        headers={"PRIVATE-TOKEN": alice.token},
        timeout=10,
    )
    assert [group["path"] for group in response.json()] == [f"course-{number:02}" for number in range(10, 20)]
    assert {name: response.headers[name] for name in ("X-Total", "X-Total-Pages", "X-Prev-Page", "X-Next-Page")} == {
        "X-Total": "25",
        "X-Total-Pages": "3",
        "X-Prev-Page": "1",
        "X-Next-Page": "3",
    }
    assert set(response.links) == {"prev", "next", "first", "last"}
    assert len(listed(gitlab, alice, search="COURSE")) == 24
    assert listed(gitlab, alice, search="05") == []  # GitLab matches a query under 3 characters whole
    assert listed(gitlab, alice, search="dept") == ["dept", *[f"dept/course-{n:02}" for n in range(24)]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"min_access_level": 0}, "min_access_level does not have a valid value"),
        ({"min_access_level": "maintainer"}, "min_access_level is invalid"),
        ({"order_by": "created_at"}, "order_by does not have a valid value"),
    ],
)
def test_invalid_list_parameters_are_400(gitlab, params, message):
    alice = gitlab.add_user("alice")
    response = requests.get(
        f"{gitlab.url}/api/v4/groups", params=params, headers={"PRIVATE-TOKEN": alice.token}, timeout=10
    )
    assert response.status_code == 400 and response.json() == {"error": message}


def test_a_token_is_needed_and_read_api_suffices(gitlab):
    alice = gitlab.add_user("alice")
    gitlab.add_group("dept", {"alice": GUEST})
    assert requests.get(f"{gitlab.url}/api/v4/groups", timeout=10).status_code == 401
    bearer = {"Authorization": f"Bearer {gitlab.issue_oauth_token(alice, scope='read_api')}"}
    response = requests.get(f"{gitlab.url}/api/v4/groups/dept", headers=bearer, timeout=10)
    assert response.status_code == 200


def test_read_user_reads_the_users_own_profile_and_nothing_else(gitlab):
    """As GitLab: the read_user scope (what JupyterHub's GitLab login asks for) reads /user and /users, no more."""
    alice = gitlab.add_user("alice")
    gitlab.add_group("dept", {"alice": GUEST})
    bearer = {"Authorization": f"Bearer {gitlab.issue_oauth_token(alice, scope='read_user')}"}
    me = requests.get(f"{gitlab.url}/api/v4/user", headers=bearer, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "alice"
    refused = requests.get(f"{gitlab.url}/api/v4/groups/dept", headers=bearer, timeout=10)
    assert refused.status_code == 403 and refused.json()["scope"] == "api read_api"


def test_a_subgroup_needs_its_parent_and_a_free_path(gitlab):
    gitlab.add_user("alice")
    with pytest.raises(ValueError, match="parent group 'dept' does not exist"):
        gitlab.add_group("dept/lab")
    gitlab.add_group("dept")
    for taken in ("dept", "Dept", "alice"):
        with pytest.raises(ValueError, match="is taken"):
            gitlab.add_group(taken)
    assert gitlab.add_group("dept/lab").full_path == "dept/lab"


def test_reset_forgets_groups(gitlab):
    gitlab.add_group("dept")
    gitlab.reset()
    assert gitlab.store.group("dept") is None
    gitlab.add_group("dept")
