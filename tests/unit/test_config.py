"""Configuration: file, environment overrides, and one clear sentence for bad settings."""

from pathlib import Path

import pytest
import yaml

from booklab.config import Config, _lookup, load
from booklab.errors import ConfigError
from booklab.pipeline.registry import Registry


def test_file_values_and_environment_overrides(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text("gitlab:\n  host: https://gitlab.example.org\nfqdn: nb.example.org\nbuild:\n  timeout: 60\n")
    config = load(path, environ={"FQDN": "other.example.org", "BOOKLAB_BUILD_TIMEOUT": "90"})
    assert config.gitlab_host == "https://gitlab.example.org"
    assert config.fqdn == "other.example.org"
    assert config.build_timeout == 90


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load(environ={})
    assert config == Config()


@pytest.mark.parametrize(
    "environ, sentence",
    [
        ({"BOOKLAB_BUILD_TIMEOUT": "soon"}, "build/timeout (from BOOKLAB_BUILD_TIMEOUT) must be a int"),
        ({"BOOKLAB_GITLAB_HOST": "gitlab"}, "gitlab/host must be a URL"),
        ({"BOOKLAB_CLONE_METHOD": "ftp"}, "clone/method must be ssh or https"),
        ({"BOOKLAB_WARM_PROJECTS": '{"course/lab": 3}'}, "'course/lab' must be a project's path and a branch"),
        ({"BOOKLAB_WARM_PROJECTS": '{"course/lab@main": 0}'}, "course/lab@main: the count must be a whole number"),
        ({"BOOKLAB_WARM_PROJECTS": '{"course/lab@main": "ten"}'}, "the count must be a whole number of spares"),
        (
            {"BOOKLAB_WARM_PROJECTS": "[course/lab@main]"},
            "warm/projects (from BOOKLAB_WARM_PROJECTS) must be a mapping",
        ),
        (
            {"BOOKLAB_WARM_PROJECTS": '{"course/lab@main": 2}', "BOOKLAB_ROUTES_PUBLISHER": "docker"},
            "warm/projects and warm/recent need launch/target standalone and routes/publisher redis or none",
        ),
        (
            {"BOOKLAB_ROUTES_PUBLISHER": "redis", "BOOKLAB_WEB_URL": "https://booklab.example.org"},
            "routes/auth_url is missing: with routes/publisher redis, Traefik asks the web tier whose notebook",
        ),
        ({"BOOKLAB_NOTEBOOK_CPUS": "-1"}, "notebook/cpus (from BOOKLAB_NOTEBOOK_CPUS) must not be negative"),
        ({"BOOKLAB_NOTEBOOK_PUBLISH": "false"}, "notebook/publish is false, so notebook/network must name"),
        ({"BOOKLAB_NOTEBOOK_PUBLISH": "maybe"}, "notebook/publish (from BOOKLAB_NOTEBOOK_PUBLISH) must be a bool"),
        ({"BOOKLAB_NOTEBOOK_MAX_LIFETIME": "604800"}, "notebook/max_lifetime must be less than 604800 s"),
        ({"BOOKLAB_NOTEBOOK_MEMORY": "lots"}, "notebook/memory must be a size such as 2g, not 'lots'"),
        ({"BOOKLAB_NOTEBOOK_MAX_MEMORY": "2t"}, "notebook/max_memory must be a size such as 8g, not '2t'"),
        ({"BOOKLAB_NOTEBOOK_MAX_MEMORY": "64m"}, "notebook/max_memory must be at least 128m, not 67108864"),
        ({"BOOKLAB_NOTEBOOK_MAX_CPUS": "inf"}, "notebook/max_cpus must be at least 0.1, not inf"),
        ({"BOOKLAB_NOTEBOOK_MAX_IDLE_TIMEOUT": "30"}, "notebook/max_idle_timeout must be at least 1m, not 30"),
        ({"BOOKLAB_SAVE_KEEP_FAILED": "2592000"}, "save/keep_failed must be at most 604800 (7 days)"),
        ({"BOOKLAB_SAVE_KEEP_MAX_SIZE": "big"}, "save/keep_max_size must be a size such as 50m, not 'big'"),
        (
            {"BOOKLAB_NOTEBOOK_REACHABLE_FROM": "10.0.0.1, traefik"},
            "notebook/reachable_from must list IPv4 addresses or networks such as 10.0.0.1 or 10.0.0.0/24, "
            "not 'traefik'",
        ),
        ({"BOOKLAB_NOTEBOOK_UNREACHABLE": "fd00::/8"}, "notebook/unreachable takes IPv4 addresses and networks only"),
        (
            {"BOOKLAB_NOTEBOOK_URLPATH": "//evil.example/lab"},
            "notebook/urlpath must be a path inside the notebook server such as lab or tree, "
            "not '//evil.example/lab': it names another host.",
        ),
    ],
)
def test_invalid_settings_stop_with_one_sentence(tmp_path, environ, sentence):
    with pytest.raises(ConfigError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        load(None, environ=environ)


def test_warm_projects_read_from_the_environment_as_a_mapping():
    config = load(None, environ={"BOOKLAB_WARM_PROJECTS": '{"course/lab@feature/week-2": 10}'})
    (target,) = config.warm_projects
    assert (target.project, target.ref, target.count, target.name) == (
        "course/lab",
        "feature/week-2",
        10,
        "course/lab@feature/week-2",
    )


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read the configuration file"):
        load(tmp_path / "missing.yml", environ={})
    bad = tmp_path / "bad.yml"
    bad.write_text("gitlab: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load(bad, environ={})


def test_missing_required_setting_names_its_variable():
    with pytest.raises(ConfigError, match="secret_key is missing: .*BOOKLAB_SECRET_KEY"):
        Config().require("secret_key")


def test_every_setting_is_documented_in_config_yml_with_its_default():
    path = Path(__file__).resolve().parents[2] / "config.yml"
    text = path.read_text()
    tree = yaml.safe_load(text)
    for f in Config.settings():
        assert _lookup(tree, f.metadata["path"]) is not None, f"{f.metadata['path']} is not in config.yml"
        assert f.metadata["help"] in text, f"the help of {f.metadata['path']} is not in config.yml"
    from_file = load(path, environ={})
    for f in Config.settings():
        if f.name != "tmpdir":  # the file shows /tmp, the default is the machine's temp dir
            assert getattr(from_file, f.name) == f.default, f.metadata["path"]


def secret_file(tmp_path, content: str = "  a-long-random-key\n", mode: int = 0o600) -> Path:
    path = tmp_path / "booklab.key"
    path.write_text(content)
    path.chmod(mode)
    return path


def test_the_secret_key_comes_from_a_file_only_its_owner_reads(tmp_path):
    path = secret_file(tmp_path)
    config = load(None, environ={"BOOKLAB_SECRET_KEY_FILE": str(path)})
    assert config.secret_key == "a-long-random-key"
    config.require("secret_key")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_secret_key_file_others_may_read_is_refused(tmp_path, mode):
    path = secret_file(tmp_path, mode=mode)
    with pytest.raises(ConfigError, match=rf"others may read or write \(mode 0{mode:o}\): .*chmod 600") as refused:
        load(None, environ={"BOOKLAB_SECRET_KEY_FILE": str(path)})
    assert "a-long-random-key" not in str(refused.value)


@pytest.mark.parametrize(
    "make, sentence",
    [
        (lambda tmp_path: tmp_path / "missing.key", "Cannot read the secret key file .*No such file"),
        (lambda tmp_path: secret_file(tmp_path, content="\n"), "is empty: put the key in it"),
        (lambda tmp_path: tmp_path, "Cannot read the secret key file .*Is a directory"),
    ],
)
def test_an_unusable_secret_key_file_stops_with_one_sentence(tmp_path, make, sentence):
    with pytest.raises(ConfigError, match=sentence):
        load(None, environ={"BOOKLAB_SECRET_KEY_FILE": str(make(tmp_path))})


def test_secret_key_and_secret_key_file_are_exclusive(tmp_path):
    path = secret_file(tmp_path)
    with pytest.raises(ConfigError, match="secret_key and secret_key_file are both set: keep only one"):
        load(None, environ={"BOOKLAB_SECRET_KEY_FILE": str(path), "BOOKLAB_SECRET_KEY": "another"})


# -- images/registry ---------------------------------------------------------------------


def test_with_a_registry_images_are_named_under_it_on_every_host():
    config = load(None, environ={"BOOKLAB_IMAGES_REGISTRY": "registry.example.org:5000/booklab/"})
    assert config.images_registry == config.image_prefix == "registry.example.org:5000/booklab"
    # the same prefix set twice is no conflict
    same = {"BOOKLAB_IMAGES_REGISTRY": "127.0.0.1:5000/lab", "BOOKLAB_BUILD_IMAGE_PREFIX": "127.0.0.1:5000/lab"}
    assert load(None, environ=same).image_prefix == "127.0.0.1:5000/lab"
    assert load(None, environ={}).image_prefix == "booklab"


@pytest.mark.parametrize(
    "environ, sentence",
    [
        (
            {"BOOKLAB_IMAGES_REGISTRY": "registry.example.org/booklab", "BOOKLAB_BUILD_IMAGE_PREFIX": "mine"},
            r"build/image_prefix \(mine\) and images/registry \(registry.example.org/booklab\) are both set",
        ),
        # a first part that is no host would be a path on Docker Hub
        ({"BOOKLAB_IMAGES_REGISTRY": "booklab/images"}, "must be a registry host and a path"),
        ({"BOOKLAB_IMAGES_REGISTRY": "registry.example.org"}, "must be a registry host and a path"),
        (
            {"BOOKLAB_IMAGES_REGISTRY": "localhost:5000/b", "BOOKLAB_IMAGES_REGISTRY_USERNAME": "runner"},
            "images/registry_username and images/registry_password .* go together",
        ),
    ],
)
def test_a_registry_setting_that_cannot_work_stops_with_one_sentence(environ, sentence):
    with pytest.raises(ConfigError, match=sentence):
        load(None, environ=environ)


def test_the_registry_password_comes_from_a_file_only_its_owner_reads(tmp_path):
    path = secret_file(tmp_path, content="the-registry-password\n")
    environ = {
        "BOOKLAB_IMAGES_REGISTRY": "registry.example.org/booklab",
        "BOOKLAB_IMAGES_REGISTRY_USERNAME": "runner",
        "BOOKLAB_IMAGES_REGISTRY_PASSWORD_FILE": str(path),
    }
    config = load(None, environ=environ)
    assert config.images_registry_password == "the-registry-password"
    assert "the-registry-password" not in repr(Registry.of(config))
    with pytest.raises(ConfigError, match="registry_password and images/registry_password_file are both set"):
        load(None, environ={**environ, "BOOKLAB_IMAGES_REGISTRY_PASSWORD": "another"})
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"registry_password_file names .* others may read") as refused:
        load(None, environ=environ)
    assert "the-registry-password" not in str(refused.value)


HUB = {"BOOKLAB_LAUNCH_TARGET": "jupyterhub", "BOOKLAB_JUPYTERHUB_API_TOKEN": "a token of the hub's"}


@pytest.mark.parametrize(
    "environ, sentence",
    [
        ({"BOOKLAB_LAUNCH_TARGET": "kubernetes"}, "launch/target must be standalone or jupyterhub"),
        ({**HUB, "BOOKLAB_JUPYTERHUB_URL": ""}, "jupyterhub/url is missing"),
        ({**HUB, "BOOKLAB_JUPYTERHUB_URL": "hub.example.org"}, "jupyterhub/url must be a base URL"),
        ({**HUB, "BOOKLAB_JUPYTERHUB_URL": "http://hub.example.org"}, "must be https:// .* would travel in clear"),
        ({**HUB, "BOOKLAB_JUPYTERHUB_API_TOKEN": "", "BOOKLAB_JUPYTERHUB_URL": "https://hub.example.org"}, "api_token"),
        (
            {**HUB, "BOOKLAB_JUPYTERHUB_URL": "https://hub.example.org", "BOOKLAB_NOTEBOOK_UNREACHABLE": "10.0.0.0/24"},
            "jupyterhub/api_port must be the port of the hub's own API .* when notebook/unreachable is set",
        ),
    ],
)
def test_hub_mode_settings_that_cannot_work_stop_with_one_sentence(environ, sentence):
    with pytest.raises(ConfigError, match=sentence):
        load(None, environ=environ)


def test_hub_mode_takes_an_https_hub_or_one_on_loopback():
    for url in ("https://hub.example.org", "http://127.0.0.1:8000"):
        assert load(None, environ={**HUB, "BOOKLAB_JUPYTERHUB_URL": url}).jupyterhub_url == url
