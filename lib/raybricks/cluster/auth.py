"""Who may use the cluster: an explicit auth mode, and a fresh token per run.

By default Ray on Spark starts with no authentication, so anyone who reaches the
cluster's ports can run code on it. And a plain local `ray.init()` anywhere on the
machine leaves `~/.ray/auth_token`; Ray nodes started without `RAY_AUTH_MODE` then
turn token auth on by themselves and fail to join a head that has it off. So every
process of a run gets the mode, and the token, explicitly: the driver through its
environment, every Ray node through a start hook that Ray on Spark asks for the
nodes' environment.
"""

from __future__ import annotations

import logging
import os
import secrets
from typing import Literal

from raybricks.cluster.compat.ray_auth import refresh_auth_cache

logger = logging.getLogger(__name__)

AuthMode = Literal["token", "disabled"]
MODE_VAR = "RAY_AUTH_MODE"
TOKEN_VAR = "RAY_AUTH_TOKEN"
START_HOOK_VAR = "RAY_ON_SPARK_START_HOOK"


def auth_environment() -> dict[str, str]:
    """The auth variables of this driver, which every Ray node must share."""
    return {name: os.environ[name] for name in (MODE_VAR, TOKEN_VAR) if name in os.environ}


def configure_auth(mode: AuthMode, start_hook: str) -> None:
    """Set this process's auth mode (and a fresh token) and route it to every node
    through `start_hook` (a class path: `NodeEnvironmentStartHook`, or one that hands
    the token on too)."""
    if mode == "token":
        os.environ[MODE_VAR] = "token"
        os.environ[TOKEN_VAR] = secrets.token_hex(32)
    else:
        logger.warning(
            "cluster.auth is 'disabled': anyone who can reach the cluster's ports can run "
            "code on it. Set cluster.auth: token unless the network is closed."
        )
        os.environ[MODE_VAR] = "disabled"
        os.environ.pop(TOKEN_VAR, None)
    os.environ[START_HOOK_VAR] = start_hook
    refresh_auth_cache()


def clear_auth() -> None:
    """Forget this run's token once its cluster is gone."""
    for name in (MODE_VAR, TOKEN_VAR, START_HOOK_VAR):
        os.environ.pop(name, None)
    refresh_auth_cache()
