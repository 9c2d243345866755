"""Issue 18's configuration part: FASTBREAKER_ENV aliases, retry from the environment,
get_or_create that refuses (or applies) other settings, and load_config from a dict or a
TOML/YAML/JSON file with per-environment profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

import fastbreaker
from fastbreaker import CircuitOpenError, ManualClock, Registry
from fastbreaker._registry import ConfigMismatchError
from fastbreaker.config import load_config, read_config_file
from fastbreaker.env import ENV_ALIASES, PROFILES, breaker_from_env, profile_name, retry_from_env


@pytest.mark.parametrize(
    ("raw", "full"),
    [
        ("dev", "development"),
        ("DEV", "development"),
        (" prod ", "production"),
        ("Stage", "staging"),
        ("test", "testing"),
        ("production", "production"),
        ("Testing", "testing"),
    ],
)
def test_env_aliases_select_the_full_profile(raw: str, full: str) -> None:
    assert profile_name(raw) == full
    options = breaker_from_env("p", environ={"FASTBREAKER_ENV": raw}).options()
    assert options["failure_threshold"] == PROFILES[full]["failure_threshold"]
    assert options["wait_duration"] == PROFILES[full]["wait_duration"]


def test_every_alias_names_a_profile() -> None:
    assert set(ENV_ALIASES.values()) == set(PROFILES)


def test_unknown_environment_lists_the_legal_names() -> None:
    with pytest.raises(ValueError, match=r"FASTBREAKER_ENV must be one of .*'dev'.*got 'qa'"):
        breaker_from_env("p", environ={"FASTBREAKER_ENV": "qa"})


def _count_calls(decorator: Callable[[Callable[[], None]], Callable[[], None]]) -> int:
    calls = 0

    @decorator
    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise OSError("down")

    with pytest.raises(OSError, match="down"):
        flaky()
    return calls


def test_retry_from_env_precedence() -> None:
    no_sleep = {"sleep": lambda _s: None}
    assert _count_calls(retry_from_env("http", environ={}, attempts=2, **no_sleep)) == 2
    environ = {"FASTBREAKER_RETRY_ATTEMPTS": "3"}
    assert _count_calls(retry_from_env("http", environ=environ, attempts=2, **no_sleep)) == 3
    environ["FASTBREAKER_HTTP_RETRY_ATTEMPTS"] = "5"
    assert _count_calls(retry_from_env("http", environ=environ, attempts=2, **no_sleep)) == 5
    # A breaker's variable of the same name is not a retry's.
    environ = {"FASTBREAKER_HTTP_ATTEMPTS": "7", "FASTBREAKER_JITTER": "0.9"}
    assert _count_calls(retry_from_env("http", environ=environ, attempts=2, **no_sleep)) == 2


def test_retry_from_env_waits_as_configured() -> None:
    waits: list[float] = []
    environ = {
        "FASTBREAKER_DB_RETRY_BASE_DELAY": "0.5",
        "FASTBREAKER_DB_RETRY_JITTER": "0",
        "FASTBREAKER_RETRY_MULTIPLIER": "3",
    }
    decorator = retry_from_env("db", environ=environ, attempts=3, sleep=waits.append)
    assert _count_calls(decorator) == 3
    assert waits == [0.5, 1.5]


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("FASTBREAKER_HTTP_RETRY_ATTEMPTS", "zero", "must be an integer"),
        ("FASTBREAKER_HTTP_RETRY_ATTEMPTS", "0", "attempts must be an int >= 1"),
        ("FASTBREAKER_RETRY_BASE_DELAY", "nan", "must be a finite number"),
    ],
)
def test_retry_from_env_bad_values_name_the_variable(variable: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        retry_from_env("http", environ={variable: raw})
    assert variable in str(info.value)
    assert repr(raw) in str(info.value)


def test_get_or_create_refuses_other_settings() -> None:
    reg = Registry()
    live = reg.get_or_create("svc", failure_threshold=3, wait_duration=10.0)
    assert reg.get_or_create("svc", failure_threshold=3, wait_duration=10.0) is live
    assert reg.get_or_create("svc") is live  # no settings given: nothing to compare
    assert reg.get_or_create("svc", failure_threshold=3) is live
    with pytest.raises(ConfigMismatchError) as info:
        reg.get_or_create("svc", failure_threshold=4)
    assert info.value.differences == {"failure_threshold": (3, 4)}
    assert "breaker 'svc'" in str(info.value) and "reconfigure=True" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert live.options()["failure_threshold"] == 3  # untouched


def test_get_or_create_reconfigures_in_place_keeping_state() -> None:
    clock = ManualClock()
    reg = Registry()
    live = reg.get_or_create("svc", failure_threshold=2, wait_duration=10.0, clock=clock)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            live.call(lambda: 1 / 0)
    assert live.state == "open"
    same = reg.get_or_create(
        "svc", failure_threshold=5, wait_duration=30.0, clock=clock, reconfigure=True
    )
    assert same is live
    assert live.state == "open"  # the state is kept
    assert live.options()["failure_threshold"] == 5
    assert live.options()["wait_duration"] == 30.0
    with pytest.raises(CircuitOpenError):
        live.call(lambda: None)


def test_get_or_create_cannot_change_a_window() -> None:
    reg = Registry()
    reg.get_or_create("w", window=50)
    with pytest.raises(ConfigMismatchError, match="window cannot change at run time"):
        reg.get_or_create("w", window=60, reconfigure=True)


def test_get_or_create_limiter_and_bulkhead() -> None:
    reg = Registry()
    lim = reg.get_or_create_limiter("l", 5, per=2.0, burst=3)
    assert reg.get_or_create_limiter("l", 5, per=2.0) is lim  # burst None: not compared
    with pytest.raises(ConfigMismatchError) as info:
        reg.get_or_create_limiter("l", 5, per=1.0, burst=3)
    assert set(info.value.differences) == {"per_ns"}
    assert reg.get_or_create_limiter("l", 8, per=1.0, burst=4, reconfigure=True) is lim
    assert (lim.rate, lim.per, lim.burst) == (8.0, 1.0, 4)
    bulk = reg.get_or_create_bulkhead("b", 2)
    with pytest.raises(ConfigMismatchError, match="max_concurrent: live 2, asked 3"):
        reg.get_or_create_bulkhead("b", 3)
    assert reg.get_or_create_bulkhead("b", 3, reconfigure=True) is bulk
    assert bulk.max_concurrent == 3


def test_register_forgets_the_arguments_of_the_replaced_object() -> None:
    reg = Registry()
    reg.get_or_create("r", failure_threshold=3)
    reg.register(fastbreaker.CircuitBreaker("r", failure_threshold=9))
    with pytest.raises(ConfigMismatchError):
        reg.get_or_create("r", failure_threshold=3)  # compared with the new object


CONFIG: dict[str, Any] = {
    "defaults": {"breaker": {"failure_rate_threshold": 50.0, "minimum_calls": 4}},
    "breakers": {
        "payments": {"failure_threshold": 5, "wait_duration": 30.0},
        "search": {"wait_duration": 5.0, "minimum_calls": 8},
    },
    "limiters": {"github": {"rate": 5000, "per": 3600}},
    "bulkheads": {"db": {"max_concurrent": 10}},
    "retries": {"http": {"attempts": 4, "base_delay": 0.2, "jitter": 0.0}},
    "profiles": {
        "prod": {"breakers": {"payments": {"wait_duration": 60.0}}},
        "Development": {"limiters": {"github": {"rate": 10}}},
    },
}


def test_load_config_from_a_dict() -> None:
    reg = load_config(CONFIG, registry=Registry(), environ={})
    payments = reg.get("payments")
    assert payments is not None
    options = payments.options()
    assert (options["failure_threshold"], options["wait_duration"]) == (5, 30.0)
    assert (options["failure_rate_threshold"], options["minimum_calls"]) == (50.0, 4)
    search = reg.get("search")
    assert search is not None and search.options()["minimum_calls"] == 8  # own section wins
    github = reg.get_limiter("github")
    assert github is not None and (github.rate, github.per) == (5000.0, 3600.0)
    db = reg.get_bulkhead("db")
    assert db is not None and db.max_concurrent == 10
    assert _count_calls(reg.retry("http")) == 4
    with pytest.raises(KeyError, match="no retry policy named 'nope'"):
        reg.retry("nope")


@pytest.mark.parametrize(("env", "wait", "rate"), [("prod", 60.0, 5000.0), ("dev", 30.0, 10.0)])
def test_load_config_profiles_and_aliases(env: str, wait: float, rate: float) -> None:
    reg = load_config(CONFIG, registry=Registry(), environ={"FASTBREAKER_ENV": env})
    payments = reg.get("payments")
    github = reg.get_limiter("github")
    assert payments is not None and github is not None
    assert payments.options()["wait_duration"] == wait
    assert github.rate == rate
    # The built-in profile sits below the file: search takes its failure_threshold.
    search = reg.get("search")
    full = profile_name(env)
    assert search is not None
    assert search.options()["failure_threshold"] == PROFILES[full]["failure_threshold"]
    # env= overrides the variable.
    other = load_config(CONFIG, registry=Registry(), env="production", environ={})
    assert other.get("payments").options()["wait_duration"] == 60.0  # type: ignore[union-attr]


def test_variables_override_the_file() -> None:
    environ = {"FASTBREAKER_PAYMENTS_WAIT_DURATION": "7", "FASTBREAKER_GITHUB_RATE": "2"}
    reg = load_config(CONFIG, registry=Registry(), environ=environ)
    assert reg.get("payments").options()["wait_duration"] == 7.0  # type: ignore[union-attr]
    assert reg.get_limiter("github").rate == 2.0  # type: ignore[union-attr]


TOML = """
[breakers.payments]
failure_threshold = 5
wait_duration = 30.0

[limiters.github]
rate = 5000
per = 3600

[bulkheads.db]
max_concurrent = 10

[profiles.stage.breakers.payments]
wait_duration = 45.0
"""

YAML = """
breakers:
  payments:
    failure_threshold: 5
    wait_duration: 30.0
limiters:
  github: {rate: 5000, per: 3600}
bulkheads:
  db: {max_concurrent: 10}
profiles:
  stage:
    breakers:
      payments: {wait_duration: 45.0}
"""


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".yml", ".json"])
def test_load_config_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"fastbreaker{suffix}"
    if suffix == ".toml":
        path.write_text(TOML)
    elif suffix == ".json":
        path.write_text(json.dumps(read_config_file(_write(tmp_path / "t.toml", TOML))))
    else:
        path.write_text(YAML)
    for env, wait in (("", 30.0), ("stage", 45.0)):
        reg = load_config(path, registry=Registry(), environ={"FASTBREAKER_ENV": env})
        assert reg.get("payments").options()["wait_duration"] == wait  # type: ignore[union-attr]
        assert reg.get_limiter("github").per == 3600.0  # type: ignore[union-attr]
        assert reg.get_bulkhead("db").max_concurrent == 10  # type: ignore[union-attr]
    assert load_config(str(path), registry=Registry(), environ={}).get("payments") is not None


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("config", "error", "message"),
    [
        ({"breaker": {}}, ValueError, r"unknown key\(s\) \['breaker'\]"),
        ({"defaults": {"bulkhead": {}}}, ValueError, r"defaults: unknown key"),
        ({"profiles": {"qa": {}}}, ValueError, r"profiles key 'qa' must be one of"),
        ({"profiles": {"dev": {}, "development": {}}}, ValueError, "names the profile"),
        ({"breakers": {"b": 5}}, ValueError, r"breakers.b must be a table"),
        (
            {"breakers": {"b": {"failure_threshold": -1}}},
            ValueError,
            r"breakers.b: .*failure_threshold",
        ),
        ({"breakers": {"b": {"colour": "red"}}}, TypeError, r"breakers.b: .*colour"),
        ({"limiters": {"l": {"per": 2}}}, TypeError, r"limiters.l: needs a rate"),
        ({"bulkheads": {"h": {"max_concurrent": 0}}}, ValueError, r"bulkheads.h: .*max_concurrent"),
        ({"retries": {"r": {"attempts": 0}}}, ValueError, r"retries.r: attempts must be"),
    ],
)
def test_load_config_errors(config: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        load_config(config, registry=Registry(), environ={})


def test_an_error_registers_nothing() -> None:
    reg = Registry()
    bad = {
        "breakers": {"a": {"failure_threshold": 3}},
        "limiters": {"l": {"rate": 1}},
        "bulkheads": {"z": {"max_concurrent": -1}},
    }
    with pytest.raises(ValueError, match=r"bulkheads\.z"):
        load_config(bad, registry=reg, environ={})
    assert (reg.get("a"), reg.get_limiter("l"), reg.get_bulkhead("z")) == (None, None, None)
    # A conflict with a live object is found before anything is registered too.
    reg.get_or_create_limiter("l", 9)
    conflicting = {"breakers": {"a": {"failure_threshold": 3}}, "limiters": {"l": {"rate": 1}}}
    with pytest.raises(ConfigMismatchError, match=r"limiters\.l: limiter 'l'"):
        load_config(conflicting, registry=reg, environ={})
    assert reg.get("a") is None


def test_loading_again_reconfigures_when_asked() -> None:
    reg = Registry()
    load_config(CONFIG, registry=reg, environ={})
    payments = reg.get("payments")
    changed = json.loads(json.dumps(CONFIG))
    changed["breakers"]["payments"]["failure_threshold"] = 8
    with pytest.raises(ConfigMismatchError, match="failure_threshold: live 5, asked 8"):
        load_config(changed, registry=reg, environ={})
    load_config(changed, registry=reg, environ={}, reconfigure=True)
    assert reg.get("payments") is payments
    assert payments is not None and payments.options()["failure_threshold"] == 8
    load_config(changed, registry=reg, environ={})  # the same again: nothing to do


def test_bad_file_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"path must name a .toml, .yaml, .yml or .json file"):
        load_config(_write(tmp_path / "c.ini", "x"), registry=Registry())
    with pytest.raises(ValueError, match="must hold a table"):
        load_config(_write(tmp_path / "c.json", "[1]"), registry=Registry())
