"""Ray reads the auth mode and token once per process and caches both, and `ray` is
imported long before a run sets them: refresh that cache, as Ray's own
`_enable_token_auth` does (Ray 2.60's `ray._raylet`)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def refresh_auth_cache() -> None:
    """Make Ray read `RAY_AUTH_MODE` and `RAY_AUTH_TOKEN` again; a warning where this
    Ray has no such cache (a new Ray may read them afresh by itself)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError) as exc:
        logger.warning("cannot refresh Ray's cached auth settings (%s); going on", exc)
