"""Machine profiles: ``profiles/list`` read from config.yml or the environment, refused with one
sentence when wrong; the profile a notebook runs with (the user's pick, else its repository's
when the user may use it, else the default); a repository's memory and CPUs within it."""

import json

import pytest

from booklab.config import load
from booklab.errors import ConfigError, SettingsError
from booklab.pipeline.notebook_settings import NotebookSettings, for_notebook, limits_of, parse
from booklab.profiles import Profile, choose
from booklab.units import human_size

GIB = 1024**3

PROFILES = (
    Profile("small", 2 * GIB, 1.0, (), "Reading"),
    Profile("medium", 4 * GIB, 2.0),
    Profile("large", 8 * GIB, 4.0, ("physics/gpu",)),
)


def test_profiles_from_config_yml_as_a_mapping(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(
        "profiles:\n"
        "  default: small\n"
        "  list:\n"
        "    small: {memory: 2g, cpus: 1, description: ' Reading '}\n"
        "    medium: {memory: 4096m, cpus: '2'}\n"
        "    large: {memory: 8g, cpus: 4, groups: [physics/gpu]}\n"
    )
    config = load(path, environ={})
    assert config.profiles_list == PROFILES
    assert config.profile("medium") == PROFILES[1] and config.profile("huge") is None


def test_profiles_from_the_environment_as_json_or_yaml_with_groups_comma_separated():
    mapping = {"large": {"memory": "8g", "cpus": 4, "groups": " physics/gpu/ , chemistry "}}
    for text in (json.dumps(mapping), "large: {memory: 8g, cpus: 4, groups: 'physics/gpu/, chemistry'}"):
        config = load(None, environ={"BOOKLAB_PROFILES_LIST": text})
        assert config.profiles_list == (Profile("large", 8 * GIB, 4.0, ("physics/gpu", "chemistry")),)
    assert load(None, environ={"BOOKLAB_PROFILES_LIST": ""}).profiles_list == ()


@pytest.mark.parametrize(
    "text, sentence",
    [
        ("[small, large]", "profiles/list (from BOOKLAB_PROFILES_LIST) must be a mapping of profile names"),
        ("{small: [unclosed", "profiles/list (from BOOKLAB_PROFILES_LIST) is not valid YAML or JSON"),
        ("{Big One: {memory: 2g, cpus: 1}}", "the profile name 'Big One' must be a simple label"),
        ("{small: 2g}", "profile small: must be a mapping with memory and cpus"),
        ("{small: {memory: 2g}}", "profile small: cpus is missing"),
        ("{small: {memory: lots, cpus: 1}}", "profile small: memory must be a size such as 4g, not 'lots'"),
        ("{small: {memory: 2g, cpus: many}}", "profile small: cpus must be a number such as 2, not 'many'"),
        ("{small: {memory: 2g, cpus: 1, gpus: 1}}", "profile small: unknown key 'gpus'; the keys are memory, cpus"),
        ("{small: {memory: 2g, cpus: 1, groups: {a: b}}}", "profile small: groups must be GitLab group paths"),
        ("{small: {memory: 64m, cpus: 1}}", "profile small: memory must be between 128m and notebook/max_memory (8g)"),
        ("{small: {memory: 16g, cpus: 1}}", "not 16g: raise notebook/max_memory or lower the profile"),
        ("{small: {memory: 2g, cpus: 8}}", "cpus must be between 0.1 and notebook/max_cpus (4), not 8"),
    ],
)
def test_a_wrong_profile_stops_start_up_with_one_sentence(text, sentence):
    with pytest.raises(ConfigError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        load(None, environ={"BOOKLAB_PROFILES_LIST": text})


def test_the_default_must_be_a_profile_for_everyone():
    two = "{small: {memory: 2g, cpus: 1}, large: {memory: 8g, cpus: 4, groups: physics}}"
    assert load(None, environ={"BOOKLAB_PROFILES_LIST": two, "BOOKLAB_PROFILES_DEFAULT": "small"})
    with pytest.raises(ConfigError, match="names the profile 'huge', which profiles/list does not define: make it one"):
        load(None, environ={"BOOKLAB_PROFILES_LIST": two, "BOOKLAB_PROFILES_DEFAULT": "huge"})
    with pytest.raises(ConfigError, match="the profile large, which is for some groups only"):
        load(None, environ={"BOOKLAB_PROFILES_LIST": two, "BOOKLAB_PROFILES_DEFAULT": "large"})


def test_summaries_as_the_log_and_the_picker_show_them():
    assert PROFILES[1].summary() == "medium: 4 GiB, 2 CPUs"
    assert Profile("tiny", 512 * 1024**2, 0.5).summary() == "tiny: 512 MiB, 0.5 CPUs"
    assert Profile("one", 1536 * 1024**2, 1.0).summary() == "one: 1.5 GiB, 1 CPU"
    assert human_size(100) == "100 bytes"


def test_the_users_pick_wins_over_the_repositorys():
    assert (
        choose(PROFILES, "small", picked="medium", asked="large", usable=["small", "medium", "large"]).profile
        == (PROFILES[1])
    )


def test_the_repositorys_profile_when_the_user_picked_none_and_may_use_it():
    chosen = choose(PROFILES, "small", picked="", asked="large", usable=["small", "medium", "large"])
    assert chosen.profile == PROFILES[2] and chosen.note == ""


def test_a_repositorys_profile_the_user_may_not_use_or_that_does_not_exist_gives_the_default_and_says_why():
    refused = choose(PROFILES, "small", picked="", asked="large", usable=["small", "medium"])
    assert refused.profile == PROFILES[0]
    assert refused.note == (
        "The repository asks for the profile large, which is for the members of physics/gpu: using the profile small."
    )
    unknown = choose(PROFILES, "", picked="", asked="huge", usable=["small"])
    assert unknown.profile is None
    assert unknown.note == (
        "The repository asks for the profile huge, which this Booklab does not have: using the default machine."
    )


def test_nothing_picked_nor_asked_gives_the_default_or_no_profile():
    assert choose(PROFILES, "medium", picked="", asked=None, usable=[]).profile == PROFILES[1]
    assert choose(PROFILES, "", picked="", asked=None, usable=[]) == choose((), "", "", None, [])
    assert choose((), "", "", None, []).profile is None


def test_a_pick_gone_from_the_runners_profiles_gives_the_default_and_says_so():
    gone = choose(PROFILES[:2], "small", picked="large", asked=None, usable=["large"])
    assert (
        gone.profile == PROFILES[0] and gone.note == "This Booklab has no profile large now: using the profile small."
    )


def test_a_repository_may_ask_for_less_than_its_profile_never_more():
    config = load(None, environ={})
    less = for_notebook(NotebookSettings(memory=GIB, cpus=0.5), config, PROFILES[1])
    assert (less.memory, less.cpus, less.notes) == (GIB, 0.5, ())
    more = for_notebook(NotebookSettings(memory=6 * GIB, cpus=3.0), config, PROFILES[1])
    assert (more.memory, more.cpus) == (4 * GIB, 2.0)
    assert more.notes == (
        "memory 6g from .booklab.yml is above the profile medium's memory 4g: using 4g.",
        "cpus 3 from .booklab.yml is above the profile medium's cpus 2: using 2.",
    )
    plain = for_notebook(NotebookSettings(), config, PROFILES[1])
    assert (plain.memory, plain.cpus, plain.idle_timeout) == (4 * GIB, 2.0, config.notebook_idle_timeout)


def test_without_a_profile_a_notebook_has_notebook_memory_and_cpus():
    plain = for_notebook(NotebookSettings(), load(None, environ={}))
    assert (plain.memory, plain.cpus) == (2 * GIB, 1.0)


def test_booklab_yml_may_name_a_profile_a_simple_label_only():
    assert parse("profile: large\n", limits_of(load(None, environ={}))).profile == "large"
    assert NotebookSettings.from_label(NotebookSettings(profile="large").as_label()).profile == "large"
    for bad in ("profile: [a]\n", "profile: ../etc\n", "profile: Large One\n"):
        with pytest.raises(SettingsError, match="profile must be the name of one of this Booklab's machine profiles"):
            parse(bad, limits_of(load(None, environ={})))
