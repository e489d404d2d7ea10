"""image_name gives a valid, collision-free Docker reference for any GitLab project path."""

import warnings

import pytest

with warnings.catch_warnings():
    # repo2docker's package import touches a deprecated pythonjsonlogger module
    warnings.simplefilter("ignore", DeprecationWarning)
    from repo2docker.utils import is_valid_docker_image_name

from booklab.errors import ConfigError
from booklab.pipeline.builder import image_name

SHA = "0123456789ABCDEF0123456789abcdef01234567"


def test_shape():
    name = image_name("booklab", "My-Group/Sub.Group/My_Project", SHA)
    repository, tag = name.rsplit(":", 1)
    assert repository.startswith("booklab/my-group-sub-group-my-project-")
    assert tag == SHA.lower()


@pytest.mark.parametrize(
    "path",
    [
        "a",
        "Group/Project",
        "-lead/trail_",
        "g/__weird__..name--",
        "ünïcødé/prøjëct",
        "___",
        "a/" + "very-long-name" * 30,
    ],
)
def test_valid_reference_for_any_path(path):
    name = image_name("registry.example.com:5000/booklab", path, SHA)
    assert is_valid_docker_image_name(name)
    assert len(name.rsplit(":", 1)[0]) <= 255


def test_similar_paths_never_collide():
    paths = ["group/my-project", "group/my_project", "group/my.project", "Group/My-Project", "group-my/project"]
    names = {image_name("booklab", path, SHA) for path in paths}
    assert len(names) == len(paths)


def test_same_path_same_name():
    assert image_name("booklab", "g/p", SHA) == image_name("booklab", "g/p", SHA)


@pytest.mark.parametrize("sha", ["main", "../etc", "", "0123456789abcdeg"])
def test_rejects_what_is_not_a_commit_sha(sha):
    with pytest.raises(ValueError):
        image_name("booklab", "g/p", sha)


@pytest.mark.parametrize("prefix", ["booklab", "registry.example.com:5000/team/booklab", "localhost/b_l"])
def test_accepts_registry_prefixes(prefix):
    assert is_valid_docker_image_name(image_name(prefix, "g/p", SHA))


@pytest.mark.parametrize("prefix", ["Booklab", "book lab", "booklab/", "", "-x.com/b", "b--/x"])
def test_rejects_an_invalid_prefix_with_a_clear_setting(prefix):
    with pytest.raises(ConfigError, match="build/image_prefix"):
        image_name(prefix, "g/p", SHA)
