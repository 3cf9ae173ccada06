"""Settings: defaults, steep.toml, STEEP_* variables, and the errors for each mistake."""

from __future__ import annotations

import pickle
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from steep.settings import (
    ConfigError,
    Settings,
    configure,
    get_settings,
    load_settings,
    redacted_url,
    reset_settings,
)

FULL_EXAMPLE = """\
# applies to every environment
namespace = "shop"
queues = ["critical", "default", "low"]
concurrency = 20
heartbeat_interval = 2
data_dir = "var/steep"

[development]
log_level = "debug"

[staging]
redis_url = "redis://:secret@staging-redis:6379/0"

[production]
redis_url = "rediss://default:secret@redis.internal:6380/0"
concurrency = 50
processes = 4
log_format = "json"
fsync = "always"
"""


def write(directory: Path, text: str, name: str = "steep.toml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def error_for(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ or {})
    return str(caught.value)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, {})
    assert settings == Settings(data_dir=tmp_path / ".steep")
    assert settings.env == "development" and settings.redis_url is None
    assert settings.data_dir.is_absolute()
    assert settings.queues == ("default",) and settings.heartbeat_timeout == 10.0
    assert settings.dead_ttl == 180 * 24 * 3600 and settings.fsync == "everysec"


def test_top_level_keys_and_the_development_table(tmp_path: Path) -> None:
    write(tmp_path, FULL_EXAMPLE)
    settings = load_settings(tmp_path, {})
    assert settings.env == "development"
    assert settings.namespace == "shop"
    assert settings.queues == ("critical", "default", "low")
    assert settings.concurrency == 20
    assert settings.heartbeat_interval == 2.0 and isinstance(settings.heartbeat_interval, float)
    assert settings.log_level == "DEBUG"  # normalised to upper case
    assert settings.redis_url is None  # [staging] and [production] do not leak
    assert settings.data_dir == tmp_path / "var" / "steep"


def test_steep_env_selects_a_table(tmp_path: Path) -> None:
    write(tmp_path, FULL_EXAMPLE)
    production = load_settings(tmp_path, {"STEEP_ENV": "production"})
    assert production.env == "production"
    assert production.redis_url == "rediss://default:secret@redis.internal:6380/0"
    assert (production.concurrency, production.processes) == (50, 4)
    assert (production.log_format, production.fsync) == ("json", "always")
    assert production.log_level == "INFO" and production.namespace == "shop"
    staging = load_settings(tmp_path, {"STEEP_ENV": "staging"})
    assert staging.redis_url == "redis://:secret@staging-redis:6379/0"
    assert staging.concurrency == 20


def test_env_in_the_file_is_a_default_that_steep_env_overrides(tmp_path: Path) -> None:
    write(tmp_path, 'env = "staging"\n[staging]\nconcurrency = 3\n')
    assert load_settings(tmp_path, {}).concurrency == 3
    assert load_settings(tmp_path, {}).env == "staging"
    assert load_settings(tmp_path, {"STEEP_ENV": "development"}).concurrency == 10


def test_environment_variables_override_the_file(tmp_path: Path) -> None:
    write(tmp_path, FULL_EXAMPLE)
    settings = load_settings(
        tmp_path,
        {
            "STEEP_ENV": "production",
            "STEEP_REDIS_URL": "unix:///run/redis.sock",
            "STEEP_DATA_DIR": "elsewhere",
            "STEEP_NAMESPACE": "other",
            "STEEP_LOG_LEVEL": "warning",
            "STEEP_LOG_FORMAT": "text",
        },
    )
    assert settings.redis_url == "unix:///run/redis.sock"
    assert settings.data_dir == tmp_path / "elsewhere"  # relative to cwd
    assert settings.namespace == "other"
    assert settings.log_level == "WARNING" and settings.log_format == "text"
    assert settings.concurrency == 50  # untouched by the environment


def test_empty_variables_count_as_unset(tmp_path: Path) -> None:
    write(tmp_path, 'redis_url = "redis://cache:6379"\n')
    settings = load_settings(tmp_path, {"STEEP_REDIS_URL": "", "STEEP_ENV": "", "STEEP_CONFIG": ""})
    assert settings.redis_url == "redis://cache:6379" and settings.env == "development"
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"  # not inside the project
    assert load_settings(elsewhere, {"STEEP_REDIS_URL": ""}).redis_url is None


def test_empty_redis_url_in_a_table_means_the_embedded_server(tmp_path: Path) -> None:
    write(tmp_path, 'redis_url = "redis://cache:6379"\n[development]\nredis_url = ""\n')
    assert load_settings(tmp_path, {}).redis_url is None
    assert load_settings(tmp_path, {"STEEP_ENV": "staging"}).redis_url == "redis://cache:6379"


def test_steep_config_names_another_file(tmp_path: Path) -> None:
    write(tmp_path, 'namespace = "ignored"\n')
    config = write(tmp_path, 'namespace = "custom"\ndata_dir = "state"\n', "conf/app.toml")
    settings = load_settings(tmp_path, {"STEEP_CONFIG": "conf/app.toml"})
    assert settings.namespace == "custom"
    assert settings.data_dir == config.parent / "state"  # relative to the file


def test_steep_config_naming_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^STEEP_CONFIG: no such file: .*missing\.toml$"):
        load_settings(tmp_path, {"STEEP_CONFIG": "missing.toml"})


FILE_ERRORS = [
    ("concurrency = \n", "steep.toml:1: invalid TOML: invalid value (column 15)"),
    ('namespace = "a"\nqueues = ["x",\n', "steep.toml:2: invalid TOML: invalid value"),
    (
        "concurrency = 1\nconcurrency = 2\n",
        "steep.toml:2: invalid TOML: cannot overwrite a value (column 16)",
    ),
    (
        'namespace = "x"\n\n\n# typo below\n\n\nheartbeat_intervall = 3\n',
        "steep.toml:7: unknown setting 'heartbeat_intervall' (did you mean 'heartbeat_interval'?)",
    ),
    (
        "[production]\nconcurency = 3\n",
        "steep.toml:2: unknown setting 'concurency' inside [production] "
        "(did you mean 'concurrency'?)",
    ),
    ('colour = "blue"\n', "steep.toml:1: unknown setting 'colour'"),
    (
        "concurrency = 1\n[prod]\nconcurrency = 3\n",
        "steep.toml:2: unknown table [prod] (did you mean [production]?)",
    ),
    (
        "[workers]\n",
        "steep.toml:1: unknown table [workers] "
        "(the tables are [development], [staging] and [production])",
    ),
    ("[production.worker]\nx = 1\n", "steep.toml:1: unknown table [production.worker]"),
    ('\n\nconcurrency = "ten"\n', "steep.toml:3: 'concurrency' must be an integer, got string"),
    ("processes = true\n", "steep.toml:1: 'processes' must be an integer, got boolean"),
    ("concurrency = 2.5\n", "steep.toml:1: 'concurrency' must be an integer, got float"),
    (
        'heartbeat_interval = "2s"\n',
        "steep.toml:1: 'heartbeat_interval' must be a number, got string",
    ),
    ("data_dir = 5\n", "steep.toml:1: 'data_dir' must be a path, got integer"),
    ('production = "yes"\n', "steep.toml:1: 'production' must be a table, got string"),
    (
        'env = "prod"\n',
        "steep.toml:1: 'env' must be one of development, staging, production, got 'prod'",
    ),
    (
        '[staging]\n\nenv = "staging"\n',
        "steep.toml:3: 'env' cannot be set inside [staging]; use STEEP_ENV",
    ),
    (
        'redis_url = "localhost:6379"\n',
        "steep.toml:1: 'redis_url' must be a redis://, rediss://, unix://, redis+sentinel:// or "
        "redis+cluster:// URL, "
        "got 'localhost:6379'",
    ),
    ("shutdown_timeout = -1\n", "steep.toml:1: 'shutdown_timeout' must be at least 0, got -1"),
    ("processes = -2\n", "steep.toml:1: 'processes' must be at least 0, got -2"),
    ("concurrency = 0\n", "steep.toml:1: 'concurrency' must be at least 1, got 0"),
    (
        "heartbeat_interval = 0\n",
        "steep.toml:1: 'heartbeat_interval' must be greater than 0, got 0",
    ),
    (
        "schedule_poll_interval = -0.5\n",
        "steep.toml:1: 'schedule_poll_interval' must be greater than 0, got -0.5",
    ),
    ("dead_ttl = inf\n", "steep.toml:1: 'dead_ttl' must be a finite number, got inf"),
    ("dead_max_jobs = 0\n", "steep.toml:1: 'dead_max_jobs' must be at least 1, got 0"),
    (
        'log_level = "loud"\n',
        "steep.toml:1: 'log_level' must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        "got 'loud'",
    ),
    ('log_format = "xml"\n', "steep.toml:1: 'log_format' must be one of text, json, got 'xml'"),
    (
        'fsync = "sometimes"\n',
        "steep.toml:1: 'fsync' must be one of always, everysec, no, got 'sometimes'",
    ),
    ('queues = "default"\n', "steep.toml:1: 'queues' must be an array of queue names, got string"),
    (
        "queues = [1]\n",
        "steep.toml:1: 'queues' must be an array of queue names, got an array containing integer",
    ),
    (
        "queues = []\n",
        "steep.toml:1: 'queues' must be a non-empty array of distinct queue names, got []",
    ),
    (
        'queues = ["a", "a"]\n',
        "steep.toml:1: 'queues' must be a non-empty array of distinct queue names, got ['a', 'a']",
    ),
    (
        'namespace = "my app"\n',
        "steep.toml:1: 'namespace' must be a non-empty name without spaces, '{' or '}', "
        "got 'my app'",
    ),
    (
        'queues = ["{mail}"]\n',
        "steep.toml:1: 'queues' must be a non-empty name without spaces, '{' or '}', got '{mail}'",
    ),
    (
        "\nheartbeat_timeout = 1.5\n",
        "steep.toml:2: 'heartbeat_timeout' (1.5) must be greater than 'heartbeat_interval' (2)",
    ),
    (
        "heartbeat_interval = 10\n",
        "steep.toml:1: 'heartbeat_timeout' (10) must be greater than 'heartbeat_interval' (10)",
    ),
    (
        "heartbeat_timeout = 5\n[production]\n\nheartbeat_interval = 20\n",
        "steep.toml:4: 'heartbeat_timeout' (5) must be greater than 'heartbeat_interval' (20) "
        "in [production]",
    ),
    # A key inside an inline table is reported at the table's line.
    (
        '\nproduction = { concurrency = "x" }\n',
        "steep.toml:2: 'concurrency' must be an integer, got string",
    ),
    (
        '\n\nproduction.concurrency = "x"\n',
        "steep.toml:3: 'concurrency' must be an integer, got string",
    ),
    ('namespace = """\nconcurrency = 1\n"""\n', "steep.toml:1: 'namespace' must be"),
    # Lines inside a multi-line string are not keys: the real `concurency` is on line 5.
    (
        'namespace = "x"\ndescription = """\nconcurency = 1\n"""\nconcurency = 2\n',
        "steep.toml:2: unknown setting 'description'",
    ),
    ('x = """\nconcurrency = 1\n"""\n"concurrency" = "two"\n', "steep.toml:1: unknown setting 'x'"),
]


@pytest.mark.parametrize(("text", "message"), FILE_ERRORS)
def test_file_errors_name_the_line_and_the_reason(tmp_path: Path, text: str, message: str) -> None:
    assert error_for(tmp_path, text).startswith(message)


def test_line_numbers_skip_multi_line_strings_and_find_quoted_keys(tmp_path: Path) -> None:
    text = (
        'namespace = "x"\n[production]\nlog_format = """\nconcurrency = 1\n"""\n'
        '"concurrency" = "two"\n'
    )
    assert error_for(tmp_path, text).startswith("steep.toml:3: 'log_format' must be one of")
    text = '[production]\n# concurrency = "three"\n"concurrency" = "two"\n'
    assert error_for(tmp_path, text) == "steep.toml:3: 'concurrency' must be an integer, got string"


def test_a_bad_table_fails_whichever_environment_is_selected(tmp_path: Path) -> None:
    # A typo in [production] surfaces on a developer's machine, not at deploy time.
    text = "[production]\nconcurrency = -1\n"
    assert (
        error_for(tmp_path, text, {"STEEP_ENV": "development"})
        == "steep.toml:2: 'concurrency' must be at least 1, got -1"
    )


def test_the_error_names_the_file_steep_config_points_to(tmp_path: Path) -> None:
    write(tmp_path, "\nconcurrency = true\n", "conf/app.toml")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {"STEEP_CONFIG": "conf/app.toml"})
    assert str(caught.value) == "conf/app.toml:2: 'concurrency' must be an integer, got boolean"


def test_non_utf8_file(tmp_path: Path) -> None:
    (tmp_path / "steep.toml").write_bytes(b'namespace = "a"\nlog_level = "\xff"\n')
    with pytest.raises(ConfigError, match=r"^steep\.toml:2: invalid TOML: not UTF-8 text$"):
        load_settings(tmp_path, {})


def test_passwords_never_appear_in_errors(tmp_path: Path) -> None:
    message = error_for(tmp_path, 'redis_url = "http://user:hunter2@host:6379"\n')
    assert "hunter2" not in message and "'http://user:***@host:6379'" in message
    with pytest.raises(ConfigError) as caught:
        elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"  # not inside the project
        load_settings(elsewhere, {"STEEP_REDIS_URL": "tcp://:hunter2@host"})
    assert (
        str(caught.value)
        == "STEEP_REDIS_URL: 'tcp://:***@host' is not a redis://, rediss://, unix://, "
        "redis+sentinel:// or redis+cluster:// URL"
    )


def test_repr_hides_the_password() -> None:
    settings = Settings(redis_url="redis://:hunter2@cache:6379/0")
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    assert "redis_url='redis://:***@cache:6379/0'" in repr(settings)
    assert repr(Settings()).startswith("Settings(env='development', redis_url=None, data_dir=")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("STEEP_ENV", "prod", "STEEP_ENV: 'prod' is not one of development, staging, production"),
        ("STEEP_LOG_FORMAT", "xml", "STEEP_LOG_FORMAT: 'xml' is not one of text, json"),
        (
            "STEEP_LOG_LEVEL",
            "verbose",
            "STEEP_LOG_LEVEL: 'verbose' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        (
            "STEEP_NAMESPACE",
            "a b",
            "STEEP_NAMESPACE: 'a b' is not a non-empty name without spaces, '{' or '}'",
        ),
    ],
)
def test_variable_errors_name_the_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, {variable: value})
    assert str(caught.value) == message


def test_settings_validate_on_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Settings: 'concurrency' must be at least 1, got 0$"):
        Settings(concurrency=0)
    with pytest.raises(ConfigError, match=r"^Settings: 'heartbeat_timeout' \(1\) must be"):
        Settings(heartbeat_timeout=1)
    settings = Settings(
        data_dir="relative",
        queues=["a", "b"],
        log_level="debug",  # type: ignore[arg-type]
        heartbeat_interval=1,
    )
    assert settings.data_dir == Path.cwd() / "relative"
    assert settings.queues == ("a", "b") and settings.log_level == "DEBUG"
    assert settings.heartbeat_interval == 1.0 and isinstance(settings.heartbeat_interval, float)
    with pytest.raises(AttributeError):
        settings.concurrency = 3  # type: ignore[misc]
    # Worker processes are spawned with the settings pickled.
    assert pickle.loads(pickle.dumps(settings)) == settings


@pytest.fixture
def clean_process_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cwd with no steep.toml and no STEEP_* variables, and no cached settings."""
    import os

    for name in list(os.environ):
        if name.startswith("STEEP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    reset_settings()
    yield tmp_path
    reset_settings()


def test_get_settings_loads_once(clean_process_settings: Path) -> None:
    write(clean_process_settings, "concurrency = 4\n")
    first = get_settings()
    assert first.concurrency == 4
    write(clean_process_settings, "concurrency = 5\n")
    assert get_settings() is first
    reset_settings()
    assert get_settings().concurrency == 5


def test_configure_replaces_the_cached_settings(clean_process_settings: Path) -> None:
    assert configure(log_level="debug", concurrency=2).log_level == "DEBUG"
    assert get_settings().concurrency == 2
    replacement = Settings(namespace="tests")
    assert configure(replacement) is get_settings()
    assert get_settings().namespace == "tests" and get_settings().concurrency == 10
    assert configure(replacement, fsync="always").fsync == "always"
    with pytest.raises(ConfigError, match=r"unknown setting 'concurency' \(did you mean"):
        configure(concurency=3)
    with pytest.raises(ConfigError, match=r"^Settings: 'log_format' must be one of text, json"):
        configure(log_format="xml")
    assert get_settings().fsync == "always"  # a failed configure changes nothing


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://default:s3cret@host:6380", "rediss://default:***@host:6380"),
        ("redis://user:p@ss:w0rd@host/1", "redis://user:***@host/1"),
        ("redis://host:6379/0?password=s3cret&ssl=1", "redis://host:6379/0?password=***&ssl=1"),
        ("redis://user@host", "redis://user@host"),
        ("redis://host:6379", "redis://host:6379"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("unix://:s3cret@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
    ],
)
def test_redacted_url(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
