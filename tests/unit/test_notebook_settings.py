"""Per-project notebook settings (.booklab.yml): valid forms, one clear sentence for each
invalid one, capping at the operator's limits, and the image label round trip."""

import os

import pytest

from booklab.config import Config
from booklab.errors import BooklabError, ConfigError, SettingsError
from booklab.pipeline.notebook_settings import (
    FILE_NAME,
    MAX_FILE_SIZE,
    MIN_CPUS,
    MIN_IDLE_TIMEOUT,
    MIN_MEMORY,
    Effective,
    Limits,
    NotebookSettings,
    effective,
    for_notebook,
    parse,
    read,
)

G = 1024**3
M = 1024**2
LIMITS = Limits(max_memory=4 * G, max_cpus=2, max_idle_timeout=2 * 3600)
DEFAULTS = dict(memory=2 * G, cpus=1.0, idle_timeout=3600)


def write(tmp_path, text: str | bytes):
    path = tmp_path / FILE_NAME
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return read(tmp_path, LIMITS)


def error_of(text: str) -> str:
    with pytest.raises(SettingsError) as info:
        parse(text, LIMITS)
    return str(info.value)


# valid forms ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, size",
    [
        ("2g", 2 * G),
        ("2G", 2 * G),
        ("512m", 512 * M),
        ("512M", 512 * M),
        ("1.5G", 1536 * M),
        ("131072k", 128 * M),
        ("2gb", 2 * G),
        ("' 3g '", 3 * G),
        ("2147483648", 2 * G),
        ("'2147483648'", 2 * G),
        ("128m", MIN_MEMORY),
        ("64g", 64 * G),
    ],
)
def test_memory_valid_forms(tmp_path, value, size):
    assert write(tmp_path, f"memory: {value}\n") == NotebookSettings(memory=size)


@pytest.mark.parametrize(
    "value, cpus",
    [
        ("1", 1.0),
        ("0.1", 0.1),
        ("1.5", 1.5),
        ("2", 2.0),
        ("'0.5'", 0.5),
        ("8", 8.0),
        (".25", 0.25),
    ],
)
def test_cpus_valid_forms(tmp_path, value, cpus):
    settings = write(tmp_path, f"cpus: {value}\n")
    assert settings == NotebookSettings(cpus=cpus)
    assert isinstance(settings.cpus, float)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("60", 60),
        ("3600", 3600),
        ("'600'", 600),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("2H", 7200),
        ("1.5h", 5400),
        ("1m", MIN_IDLE_TIMEOUT),
        ("48h", 48 * 3600),
    ],
)
def test_idle_timeout_valid_forms(tmp_path, value, seconds):
    assert write(tmp_path, f"idle_timeout: {value}\n") == NotebookSettings(idle_timeout=seconds)


@pytest.mark.parametrize(
    "value, urlpath",
    [
        ("lab", "lab"),
        ("/lab", "lab"),
        ("tree/notebooks/intro.ipynb", "tree/notebooks/intro.ipynb"),
        ("voila/render/app.ipynb", "voila/render/app.ipynb"),
        ("'lab/tree/a b.ipynb'", "lab/tree/a b.ipynb"),
        ("'lab/tree/x.ipynb?reset#top'", "lab/tree/x.ipynb?reset#top"),
        ("tree/caf\u00e9/./x.ipynb", "tree/caf\u00e9/./x.ipynb"),
        ("tree/a:b.ipynb", "tree/a:b.ipynb"),
        ("'a..b/c..'", "a..b/c.."),
        ("'/'", ""),
        ("''", ""),
        ("x" * 300, "x" * 300),
    ],
)
def test_urlpath_valid_forms(tmp_path, value, urlpath):
    assert write(tmp_path, f"urlpath: {value}\n") == NotebookSettings(urlpath=urlpath)


def test_all_keys_together_and_empty_values_mean_not_set(tmp_path):
    text = "# notebook settings\nmemory: 1g\ncpus: 0.5\nidle_timeout: 15m\nurlpath: lab\n"
    assert write(tmp_path, text) == NotebookSettings(memory=G, cpus=0.5, idle_timeout=900, urlpath="lab")
    assert write(tmp_path, "memory:\ncpus: ~\nurlpath: lab\n") == NotebookSettings(urlpath="lab")


def test_missing_file_empty_file_and_comments_only(tmp_path):
    assert read(tmp_path, LIMITS) == NotebookSettings()
    assert write(tmp_path, "") == NotebookSettings()
    assert write(tmp_path, "\n  \n") == NotebookSettings()
    assert write(tmp_path, "# nothing to set yet\n") == NotebookSettings()
    assert write(tmp_path, "\ufeffcpus: 1\n".encode()) == NotebookSettings(cpus=1.0)


# invalid values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, shown",
    [
        ("lots", "'lots'"),
        ("0", "0"),
        ("-1g", "'-1g'"),
        ("-5", "-5"),
        ("64m", "'64m'"),
        ("100", "100"),
        ("2t", "'2t'"),
        ("2.5", "2.5"),
        ("yes", "a boolean (true)"),
        ("[2g]", "a list"),
        ("{a: 1}", "a mapping"),
        ("2 gigabytes", "'2 gigabytes'"),
        ("'\u0662g'", "'\u0662g'"),
    ],
)
def test_memory_invalid_forms(value, shown):
    assert error_of(f"memory: {value}\n") == (
        f".booklab.yml: memory must be a size between 128m and 4g (like 2g), not {shown}."
    )


@pytest.mark.parametrize(
    "value, shown",
    [
        ("lots", "'lots'"),
        ("0", "0"),
        ("-1", "-1"),
        ("0.05", "0.05"),
        ("yes", "a boolean (true)"),
        ("true", "a boolean (true)"),
        ("no", "a boolean (false)"),
        (".nan", "nan"),
        (".inf", "inf"),
        ("'1e1'", "'1e1'"),
        ("[1]", "a list"),
        ("1" * 400, "a very large number"),
    ],
)
def test_cpus_invalid_forms(value, shown):
    assert error_of(f"cpus: {value}\n") == (
        f".booklab.yml: cpus must be a number between 0.1 and 2 (like 1), not {shown}."
    )


@pytest.mark.parametrize(
    "value, shown",
    [
        ("soon", "'soon'"),
        ("0", "0"),
        ("-60", "-60"),
        ("59", "59"),
        ("30s", "'30s'"),
        ("2d", "'2d'"),
        ("600.0", "600.0"),
        ("yes", "a boolean (true)"),
        ("1h30m", "'1h30m'"),
        ("0.5m", "'0.5m'"),
    ],
)
def test_idle_timeout_invalid_forms(value, shown):
    assert error_of(f"idle_timeout: {value}\n") == (
        ".booklab.yml: idle_timeout must be a duration between 1m and 2h in seconds or with a unit "
        f"s, m or h (like 30m), not {shown}."
    )


@pytest.mark.parametrize(
    "yaml_value, reason",
    [
        ("http://x", "it has a scheme"),
        ("'javascript:alert(1)'", "it has a scheme"),
        ("//evil", "it names another host"),
        ("'//evil.example/lab'", "it names another host"),
        ("../x", "it has a '..' segment"),
        ("a/../../b", "it has a '..' segment"),
        ("tree/..", "it has a '..' segment"),
        ("'/..'", "it has a '..' segment"),
        ("a/%2e%2E/b", "it has a '..' segment"),
        ("'a\\\\b'", "it holds a backslash"),
        ("'/\\\\evil'", "it holds a backslash"),
        ("a%5cb", "it holds an escaped backslash or control character"),
        ('"lab\\x00"', "it holds a control character"),
        ('"lab\\nx"', "it holds a control character"),
        ('"lab\\tx"', "it holds a control character"),
        ('"lab\\u202ex"', "it holds a control character"),
        ("lab%0ax", "it holds an escaped backslash or control character"),
        ("'x' ", None),
        ("' /evil'", "it starts or ends with a space"),
        ("'/ lab'", "it starts or ends with a space"),
        ("x" * 301, "it is longer than 300 characters"),
        ("42", "it is an integer"),
        ("[lab]", "it is a list"),
        ("yes", "it is a boolean"),
    ],
)
def test_urlpath_rejections(yaml_value, reason):
    if reason is None:  # a control for the quoting above: a plain valid value
        assert parse(f"urlpath: {yaml_value}\n", LIMITS) == NotebookSettings(urlpath="x")
        return
    message = error_of(f"urlpath: {yaml_value}\n")
    assert message.startswith(
        ".booklab.yml: urlpath must be a path inside the notebook server of at most 300 characters "
        "(like lab or tree/notebooks/intro.ipynb), not "
    )
    assert message.endswith(f": {reason}.")


def test_urlpath_messages_escape_and_shorten_the_value():
    message = error_of('urlpath: "\\x1b[31mred"\n')
    assert "\x1b" not in message and "'\\x1b[31mred'" in message
    message = error_of("urlpath: http://" + "x" * 400 + "\n")
    assert "'http://" + "x" * 33 + "...'" in message
    assert "x" * 41 not in message


def test_unknown_key_names_it_and_lists_the_known_ones():
    assert error_of("memory: 2g\nmem: 2g\n") == (
        ".booklab.yml: unknown key 'mem'; the known keys are memory, cpus, idle_timeout, urlpath and profile."
    )
    assert "unknown key a boolean (true)" in error_of("on: push\n")
    assert "unknown key 'notebook'" in error_of("notebook:\n  memory: 2g\n")


def test_bad_yaml_names_the_line_without_echoing_the_file():
    message = error_of("memory: 2g\ncpus: 1\n  idle_timeout: 1h\nsecret: hunter2\n")
    assert message.startswith(".booklab.yml is not valid YAML (line 3, column ")
    assert "hunter2" not in message and "idle_timeout" not in message
    message = error_of("memory: 2g\nurlpath: [lab\n")
    assert message.startswith(".booklab.yml is not valid YAML (line ")
    assert "is not valid YAML (line 1" in error_of("memory: \x00\n")
    assert "nested too deeply" in error_of("memory: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "not valid YAML" in error_of("memory: " + "9" * 5000 + "\n")
    assert "not valid YAML" in error_of("a: 1\n---\nb: 2\n")


@pytest.mark.parametrize(
    "text, kind",
    [
        ("- memory: 2g\n", "a list"),
        ("2g\n", "a string"),
        ("42\n", "an integer"),
        ("true\n", "a boolean"),
    ],
)
def test_top_level_must_be_a_mapping(text, kind):
    assert error_of(text) == (
        f".booklab.yml must be a mapping of settings such as 'memory: 2g' (one per line), not {kind}."
    )


def test_file_larger_than_64_kib_is_refused(tmp_path):
    text = "# " + "x" * MAX_FILE_SIZE + "\nmemory: 2g\n"
    with pytest.raises(SettingsError, match=r"\.booklab\.yml is larger than 64 KiB"):
        write(tmp_path, text)
    with pytest.raises(SettingsError, match="larger than 64 KiB"):
        parse(text, LIMITS)
    just_fits = "#" * (MAX_FILE_SIZE - len("\nmemory: 2g\n")) + "\nmemory: 2g\n"
    assert write(tmp_path, just_fits) == NotebookSettings(memory=2 * G)


def test_not_utf8_symlink_and_directory_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="must be UTF-8 text"):
        write(tmp_path, b"memory: \xff2g\n")
    (tmp_path / FILE_NAME).unlink()
    outside = tmp_path / "outside.yml"
    outside.write_text("memory: 2g\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink(outside, repo / FILE_NAME)
    with pytest.raises(SettingsError, match="must be a regular file, not a symbolic link"):
        read(repo, LIMITS)
    (repo / FILE_NAME).unlink()
    os.symlink(tmp_path / "nowhere", repo / FILE_NAME)
    with pytest.raises(SettingsError, match="not a symbolic link"):
        read(repo, LIMITS)
    (repo / FILE_NAME).unlink()
    (repo / FILE_NAME).mkdir()
    with pytest.raises(SettingsError, match="must be a regular file"):
        read(repo, LIMITS)


def test_settings_error_is_a_booklab_error():
    assert issubclass(SettingsError, BooklabError)
    assert not SettingsError.transient


# effective settings ------------------------------------------------------------------------


def test_defaults_apply_to_keys_not_set():
    assert effective(NotebookSettings(), LIMITS, **DEFAULTS) == Effective(
        memory=2 * G, cpus=1.0, idle_timeout=3600, urlpath="", notes=()
    )
    assert effective(NotebookSettings(), LIMITS, **DEFAULTS, urlpath="tree").urlpath == "tree"


def test_a_notebook_opens_jupyterlab_unless_its_repository_or_the_operator_says_otherwise():
    assert for_notebook(NotebookSettings(), Config()).urlpath == "lab"
    assert for_notebook(NotebookSettings(urlpath="tree"), Config()).urlpath == "tree"
    assert for_notebook(NotebookSettings(), Config(notebook_urlpath="/tree/docs")).urlpath == "tree/docs"
    assert for_notebook(NotebookSettings(), Config(notebook_urlpath="")).urlpath == ""


def test_requested_values_within_limits_are_used_as_they_are():
    requested = NotebookSettings(memory=512 * M, cpus=2.0, idle_timeout=7200, urlpath="lab")
    assert effective(requested, LIMITS, **DEFAULTS) == Effective(
        memory=512 * M, cpus=2.0, idle_timeout=7200, urlpath="lab", notes=()
    )


def test_values_above_the_maximum_are_capped_with_a_note():
    requested = parse("memory: 64g\ncpus: 8\nidle_timeout: 48h\nurlpath: lab\n", LIMITS)
    result = effective(requested, LIMITS, **DEFAULTS)
    assert (result.memory, result.cpus, result.idle_timeout, result.urlpath) == (4 * G, 2.0, 7200, "lab")
    assert result.notes == (
        "memory 64g from .booklab.yml is above the maximum 4g: using 4g.",
        "cpus 8 from .booklab.yml is above the maximum 2: using 2.",
        "idle_timeout 48h from .booklab.yml is above the maximum 2h: using 2h.",
    )


def test_defaults_above_the_maximum_are_capped_too():
    result = effective(NotebookSettings(cpus=1.5), LIMITS, memory=8 * G, cpus=4.0, idle_timeout=90000)
    assert (result.memory, result.cpus, result.idle_timeout) == (4 * G, 1.5, 7200)
    assert result.notes == (
        "the default memory 8g is above the maximum 4g: using 4g.",
        "the default idle_timeout 25h is above the maximum 2h: using 2h.",
    )


def test_limits_below_the_minimums_are_a_configuration_error():
    with pytest.raises(ConfigError, match="max_memory must be at least 128m"):
        Limits(max_memory=64 * M, max_cpus=1, max_idle_timeout=3600)
    with pytest.raises(ConfigError, match="max_cpus must be at least 0.1"):
        Limits(max_memory=G, max_cpus=0, max_idle_timeout=3600)
    with pytest.raises(ConfigError, match="max_idle_timeout must be at least 1m"):
        Limits(max_memory=G, max_cpus=1, max_idle_timeout=30)
    assert Limits(max_memory=MIN_MEMORY, max_cpus=MIN_CPUS, max_idle_timeout=MIN_IDLE_TIMEOUT)


def test_messages_use_the_operator_limits():
    small = Limits(max_memory=1536 * M, max_cpus=0.5, max_idle_timeout=5400)
    with pytest.raises(SettingsError, match=r"between 128m and 1536m \(like 1536m\), not 'lots'"):
        parse("memory: lots\n", small)
    with pytest.raises(SettingsError, match=r"between 0.1 and 0.5 \(like 0.5\)"):
        parse("cpus: 0\n", small)
    with pytest.raises(SettingsError, match=r"between 1m and 90m .* \(like 30m\)"):
        parse("idle_timeout: 0\n", small)


# the image label ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        NotebookSettings(),
        NotebookSettings(memory=2 * G),
        NotebookSettings(memory=64 * G, cpus=0.1, idle_timeout=60, urlpath="tree/caf\u00e9 x.ipynb?a=1#b"),
        NotebookSettings(cpus=1.5, urlpath=""),
    ],
)
def test_label_round_trip(settings):
    label = settings.as_label()
    assert " " not in label.replace("caf\\u00e9 x", "")
    assert NotebookSettings.from_label(label) == settings


def test_label_is_compact_json_of_the_set_keys():
    assert NotebookSettings().as_label() == "{}"
    assert NotebookSettings(memory=2 * G, cpus=1.0).as_label() == '{"cpus":1.0,"memory":2147483648}'


@pytest.mark.parametrize(
    "label",
    [
        "",
        "not json",
        "[]",
        "null",
        '"lab"',
        '{"memory": "lots"}',
        '{"cpus": 0}',
        '{"cpus": true}',
        '{"urlpath": "//evil"}',
        '{"urlpath": "../x"}',
        '{"colour": "red"}',
        '{"memory": 1}',
        '{"idle_timeout": 1}',
        "[" * 100000,
        '{"urlpath": "' + "x" * 9000 + '"}',
    ],
)
def test_invalid_labels_give_no_settings(label):
    assert NotebookSettings.from_label(label) == NotebookSettings()
