"""The web interface's settings: a log viewer URL must say where the log index goes."""

from __future__ import annotations

import pytest

from assay.config import ConfigError, load_settings


def test_log_viewer_url_needs_the_log_index_placeholder() -> None:
    good = load_settings({"log_viewer_url": "https://viewer.invalid/?logIndex={log_index}"}, environ={})
    assert good.log_viewer_url == "https://viewer.invalid/?logIndex={log_index}"
    with pytest.raises(ConfigError, match="must be an http"):
        load_settings({"log_viewer_url": "https://viewer.invalid/"}, environ={})
    with pytest.raises(ConfigError, match="must be an http"):
        load_settings({"log_viewer_url": "javascript:alert({log_index})"}, environ={})
    env = load_settings(
        {}, environ={"ASSAY_LOG_VIEWER_URL": "http://v.invalid/{log_index}", "ASSAY_SESSION_LIFETIME": "600"}
    )
    assert env.log_viewer_url == "http://v.invalid/{log_index}"
    assert env.session_lifetime == 600
    with pytest.raises(ConfigError, match="session_lifetime must be at least 60 seconds"):
        load_settings({"session_lifetime": 5}, environ={})
