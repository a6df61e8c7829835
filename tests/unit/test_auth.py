import logging
import os

import pytest
from ray._common.utils import load_class  # what Ray on Spark uses to load the hook

from raybricks.cluster.auth import START_HOOK_VAR, clear_auth, configure_auth
from raybricks.platform import LOCAL_START_HOOK, Platform
from raybricks.settings import ClusterSettings


@pytest.fixture(autouse=True)
def clean_env():
    yield
    clear_auth()


def test_token_mode_makes_a_fresh_token_that_the_start_hook_hands_to_every_node():
    configure_auth("token", LOCAL_START_HOOK)
    first = os.environ["RAY_AUTH_TOKEN"]
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert len(first) == 64
    hook = load_class(os.environ[START_HOOK_VAR])()  # as Ray does: no arguments
    assert hook.custom_environment_variables() == {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": first,
    }
    configure_auth("token", LOCAL_START_HOOK)
    assert os.environ["RAY_AUTH_TOKEN"] != first  # per run


def test_disabled_mode_is_explicit_for_every_node_and_warns(caplog):
    with caplog.at_level(logging.WARNING):
        configure_auth("disabled", LOCAL_START_HOOK)
    hook = load_class(os.environ[START_HOOK_VAR])()
    # explicit "disabled" beats a stray ~/.ray/auth_token on every node
    assert hook.custom_environment_variables() == {"RAY_AUTH_MODE": "disabled"}
    assert "anyone who can reach" in caplog.text


def test_the_databricks_hook_is_used_on_databricks():
    platform = Platform.of(ClusterSettings(), {}, environ={"DATABRICKS_RUNTIME_VERSION": "16.4"})
    configure_auth("token", platform.start_hook)
    hook = load_class(os.environ[START_HOOK_VAR])()
    assert type(hook).__name__ == "JobStartHook"
    assert hook.custom_environment_variables()["RAY_AUTH_TOKEN"] == os.environ["RAY_AUTH_TOKEN"]


def test_clear_auth_forgets_the_token():
    configure_auth("token", LOCAL_START_HOOK)
    clear_auth()
    assert not {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN", START_HOOK_VAR} & set(os.environ)
