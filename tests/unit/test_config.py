"""Configuration: file, environment overrides, and one clear sentence for bad settings."""

import pytest

from booklab.config import Config, load
from booklab.errors import ConfigError


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


@pytest.mark.parametrize("environ, sentence", [
    ({"BOOKLAB_BUILD_TIMEOUT": "soon"}, "build/timeout (from BOOKLAB_BUILD_TIMEOUT) must be a int"),
    ({"BOOKLAB_GITLAB_HOST": "gitlab"}, "gitlab/host must be a URL"),
    ({"BOOKLAB_CLONE_METHOD": "ftp"}, "clone/method must be ssh or https"),
    ({"BOOKLAB_NOTEBOOK_CPUS": "-1"}, "notebook/cpus (from BOOKLAB_NOTEBOOK_CPUS) must not be negative"),
])
def test_invalid_settings_stop_with_one_sentence(tmp_path, environ, sentence):
    with pytest.raises(ConfigError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        load(None, environ=environ)


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
