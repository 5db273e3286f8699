"""Settings: defaults < TOML file < ASSAY_* environment < flags (issue 2, item 2).

``load_settings`` is tested directly for every kind of value a setting can have (int, bool,
str, Path, optional Path); the layering through the real ``assay serve`` is in test_serve.py.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from assay.config import ConfigError, Settings, load_settings, settings_to_env


def write(tmp_path: Path, text: str, name: str = "assay.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_with_nothing_set() -> None:
    s = load_settings({}, environ={})
    assert s.port == 8000
    assert s.host == "127.0.0.1"
    assert s.workers == 1
    assert s.data_dir == Path("assay-data")
    assert s.tls_cert is None
    assert s.private is False
    # PyPI's default per-file limit is 100 MiB.
    assert s.max_upload_size == 100 * 1024 * 1024
    assert s.resolved_database_url.endswith("/assay-data/assay.db")
    assert s.resolved_database_url.startswith("sqlite:///")


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    cfg = write(tmp_path, "port = 1111\nhost = '127.0.0.2'\nworkers = 3\n")
    only_file = load_settings({}, config_file=cfg, environ={})
    assert (only_file.port, only_file.host, only_file.workers) == (1111, "127.0.0.2", 3)

    env = {"ASSAY_PORT": "2222", "ASSAY_HOST": "127.0.0.3"}
    file_and_env = load_settings({}, config_file=cfg, environ=env)
    assert (file_and_env.port, file_and_env.host, file_and_env.workers) == (2222, "127.0.0.3", 3)

    everything = load_settings({"port": 3333, "host": None}, config_file=cfg, environ=env)
    # A flag that was not given (None) does not hide the layers below it.
    assert (everything.port, everything.host, everything.workers) == (3333, "127.0.0.3", 3)


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    cfg = write(tmp_path, "port = 4444\n")
    assert load_settings({}, environ={"ASSAY_CONFIG": str(cfg)}).port == 4444
    assert load_settings({}, environ={"ASSAY_CONFIG": str(cfg)}).config_file == cfg


def test_config_file_accepts_dashes_and_an_assay_table(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[assay]\nmax-upload-size = 1024\ndata-dir = 'somewhere'\n")
    s = load_settings({}, config_file=cfg, environ={})
    assert s.max_upload_size == 1024
    assert s.data_dir == Path("somewhere")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
    ],
)
def test_bool_from_environment(raw: str, expected: bool) -> None:
    assert load_settings({}, environ={"ASSAY_PRIVATE": raw}).private is expected


def test_bool_from_file_and_flag(tmp_path: Path) -> None:
    cfg = write(tmp_path, "private = true\naccess_log = false\n")
    s = load_settings({}, config_file=cfg, environ={})
    assert s.private is True
    assert s.access_log is False
    assert load_settings({"private": False}, config_file=cfg, environ={}).private is False


def test_invalid_bool_names_the_setting_and_source() -> None:
    with pytest.raises(ConfigError, match=r"private \(environment variable ASSAY_PRIVATE\).*true or false"):
        load_settings({}, environ={"ASSAY_PRIVATE": "maybe"})


def test_int_from_every_source(tmp_path: Path) -> None:
    cfg = write(tmp_path, "graceful_timeout = 7\n")
    assert load_settings({}, config_file=cfg, environ={}).graceful_timeout == 7
    assert load_settings({}, environ={"ASSAY_GRACEFUL_TIMEOUT": " 9 "}).graceful_timeout == 9
    assert load_settings({"graceful_timeout": 11}, environ={}).graceful_timeout == 11


@pytest.mark.parametrize("raw", ["eighty", "80.5", "", "0x50"])
def test_invalid_int_from_environment(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"port \(environment variable ASSAY_PORT\)"):
        load_settings({}, environ={"ASSAY_PORT": raw})


@pytest.mark.parametrize("value", ["true", "80.5", "'eighty'", "[80]"])
def test_invalid_int_in_file(tmp_path: Path, value: str) -> None:
    # A TOML boolean or a fraction is not a port; silently truncating 80.5 to 80 would hide a typo.
    cfg = write(tmp_path, f"port = {value}\n")
    with pytest.raises(ConfigError, match=r"port \(config file .*\)"):
        load_settings({}, config_file=cfg, environ={})


def test_str_settings(tmp_path: Path) -> None:
    cfg = write(tmp_path, "token_prefix = 'corp-'\nbase_url = 'https://pkgs.example'\n")
    s = load_settings({}, config_file=cfg, environ={"ASSAY_OIDC_AUDIENCE": "corp"})
    assert (s.token_prefix, s.base_url, s.oidc_audience) == ("corp-", "https://pkgs.example", "corp")
    bad = write(tmp_path, "token_prefix = ['a']\n", "bad.toml")
    with pytest.raises(ConfigError, match=r"token_prefix .*expected a string"):
        load_settings({}, config_file=bad, environ={})


def test_host_list_from_every_source(tmp_path: Path) -> None:
    # allowed_hosts: a TOML list, a comma-separated ASSAY_ALLOWED_HOSTS, a repeated flag.
    cfg = write(tmp_path, "allowed_hosts = ['Packages.example', '.corp.example']\n")
    assert load_settings({}, config_file=cfg, environ={}).allowed_hosts == ("packages.example", ".corp.example")
    env = {"ASSAY_ALLOWED_HOSTS": "a.example, 10.0.0.1,,[::1]"}
    assert load_settings({}, config_file=cfg, environ=env).allowed_hosts == ("a.example", "10.0.0.1", "[::1]")
    flags = {"allowed_hosts": ("b.example", "*")}
    assert load_settings(flags, config_file=cfg, environ=env).allowed_hosts == ("b.example", "*")
    assert load_settings({"allowed_hosts": None}, environ={}).allowed_hosts == ()
    with pytest.raises(ConfigError, match=r"allowed_hosts .*expected a list of strings"):
        load_settings({}, config_file=write(tmp_path, "allowed_hosts = [1]\n", "bad.toml"), environ={})


@pytest.mark.parametrize("entry", ["packages.example:443", "https://packages.example", "a b", "[::1]:80", "x/y"])
def test_a_host_list_entry_must_be_a_bare_host_name(entry: str) -> None:
    with pytest.raises(ConfigError, match=rf"allowed_hosts: {re.escape(repr(entry))} is not a host name"):
        load_settings({"allowed_hosts": (entry,)}, environ={})


def test_path_and_optional_path(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    s = load_settings({}, environ={"ASSAY_TLS_CERT": str(cert), "ASSAY_TLS_KEY": str(key)})
    assert (s.tls_cert, s.tls_key) == (cert, key)
    assert s.scheme == "https"
    # An empty value unsets an optional setting (how settings_to_env writes None).
    cfg = write(tmp_path, f"tls_cert = '{cert}'\ntls_key = '{key}'\n")
    unset = load_settings({}, config_file=cfg, environ={"ASSAY_TLS_CERT": "", "ASSAY_TLS_KEY": ""})
    assert unset.tls_cert is None
    assert unset.scheme == "http"
    home = load_settings({"data_dir": "~/idx"}, environ={})
    assert home.data_dir == Path.home() / "idx"


def test_unknown_setting_in_file_is_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path, "prot = 80\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings({}, config_file=cfg, environ={})


def test_unknown_assay_environment_variables_are_ignored() -> None:
    # The environment is shared with everything else; only known names are read.
    assert load_settings({}, environ={"ASSAY_TEST_POSTGRESQL_URL": "x"}).database_url == ""


def test_missing_and_invalid_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, config_file=tmp_path / "nope.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, config_file=write(tmp_path, "port = = 1\n"), environ={})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_cert": "c.pem"}, "tls_cert and tls_key must be given together"),
        ({"tls_key": "k.pem"}, "tls_cert and tls_key must be given together"),
        ({"port": 70000}, "port must be between 0 and 65535"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"max_upload_size": 0}, "max_upload_size must be positive"),
        ({"minted_token_lifetime": 60}, "PEP 807"),
        ({"base_url": "pkgs.example"}, "base_url must start with http:// or https://"),
    ],
)
def test_validation(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(overrides, environ={})


def test_settings_round_trip_through_the_worker_environment(tmp_path: Path) -> None:
    # --workers N: each worker rebuilds its settings from the environment the parent wrote.
    original = load_settings(
        {
            "port": 0,
            "private": True,
            "tls_cert": str(tmp_path / "c"),
            "tls_key": str(tmp_path / "k"),
            "max_upload_size": 12345,
            "base_url": "https://x.example",
            "allowed_hosts": ("x.example", ".y.example"),
            "data_dir": str(tmp_path),
        },
        environ={},
    )
    rebuilt = load_settings({}, environ=settings_to_env(original))
    assert rebuilt == original
    assert {f.name for f in fields(Settings)} - {"config_file", "sources"} == {
        k.removeprefix("ASSAY_").lower() for k in settings_to_env(original)
    }


def test_an_unusable_trust_root_is_a_config_error(tmp_path: Path) -> None:
    # Issue 11: one ConfigError, which every command reports as a usage error, for a trust root
    # named by a setting or an option as for any other setting.
    from assay.attestations.trust import read_trust_root

    with pytest.raises(ConfigError, match="does not exist"):
        read_trust_root(tmp_path / "missing.json")
