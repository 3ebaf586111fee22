"""make / register / REGISTERED_ENVIRONMENTS."""

import pytest

import popgym_arcade
from popgym_arcade import registration
from tests.toy_envs import PaperStyleCounter


@pytest.fixture
def temporary_ids():
    added = []
    yield added
    for env_id in added:
        registration._FACTORIES.pop(env_id, None)
        if env_id in registration.REGISTERED_ENVIRONMENTS:
            registration.REGISTERED_ENVIRONMENTS.remove(env_id)


def test_unknown_id_names_closest_ids(temporary_ids):
    registration.register("CounterEasy", PaperStyleCounter)
    temporary_ids.append("CounterEasy")
    with pytest.raises(ValueError, match="CounterEasy"):
        popgym_arcade.make("CounterEsy")
    with pytest.raises(ValueError, match="unknown environment id 'Nonsense'"):
        popgym_arcade.make("Nonsense")


@pytest.mark.parametrize("size", [64, 127, 512, "128", True])
def test_bad_obs_size(size, temporary_ids):
    registration.register("CounterSize", PaperStyleCounter)
    temporary_ids.append("CounterSize")
    with pytest.raises(ValueError, match="obs_size"):
        popgym_arcade.make("CounterSize", obs_size=size)


def test_register_and_make_pass_arguments(temporary_ids):
    registration.register("CounterArgs", PaperStyleCounter)
    temporary_ids.append("CounterArgs")
    env, params = popgym_arcade.make("CounterArgs", partial_obs=True, obs_size=256)
    assert env.partial_obs and env.obs_size == 256
    assert params == env.default_params


def test_register_refuses_duplicates_unless_overwrite(temporary_ids):
    registration.register("CounterDup", PaperStyleCounter)
    temporary_ids.append("CounterDup")
    with pytest.raises(ValueError, match="already registered"):
        registration.register("CounterDup", PaperStyleCounter)
    registration.register("CounterDup", PaperStyleCounter, overwrite=True)
    assert registration.REGISTERED_ENVIRONMENTS.count("CounterDup") == 1


def test_register_validates_input():
    with pytest.raises(ValueError):
        registration.register("", PaperStyleCounter)
    with pytest.raises(TypeError):
        registration.register("NotCallable", 3)


def test_builtin_ids_follow_the_naming_scheme():
    for name, _ in registration.BUILTIN_GAMES:
        for level in registration.LEVELS:
            assert f"{name}{level}" in registration.REGISTERED_ENVIRONMENTS


def test_difficulty_override_through_make():
    if not registration.BUILTIN_GAMES:
        pytest.skip("no built-in game registered")
    name, _ = registration.BUILTIN_GAMES[0]
    env, _ = popgym_arcade.make(f"{name}Easy", difficulty="Hard")
    assert env.difficulty == registration.game_class(name).difficulties["Hard"]
    with pytest.raises(ValueError, match="difficulties"):
        popgym_arcade.make(f"{name}Easy", difficulty="Impossible")
