"""breaker_from_env / limiter_from_env: precedence, profiles, parsing and error messages."""

from __future__ import annotations

import pytest

from fastbreaker import CircuitBreaker, RateLimiter
from fastbreaker.env import PROFILES, breaker_from_env, env_name, limiter_from_env


def test_env_name_upper_cases_and_replaces_non_alphanumerics() -> None:
    assert env_name("payments") == "PAYMENTS"
    assert env_name("payments-v2") == "PAYMENTS_V2"
    assert env_name("a.b c/é") == "A_B_C__"
    with pytest.raises(TypeError, match=r"name must be a str, got 3 \(int\)"):
        env_name(3)  # type: ignore[arg-type]


def test_no_variables_gives_the_constructor_defaults() -> None:
    breaker = breaker_from_env("plain", environ={})
    assert type(breaker) is CircuitBreaker
    assert breaker.name == "plain"
    assert breaker.options() == CircuitBreaker("plain").options()


def test_precedence_per_name_over_global_over_kwargs_over_profile() -> None:
    environ = {
        "FASTBREAKER_ENV": "production",  # failure_threshold 3, wait 60, rate 40
        "FASTBREAKER_FAILURE_THRESHOLD": "7",
        "FASTBREAKER_PAYMENTS_FAILURE_THRESHOLD": "9",
        "FASTBREAKER_WAIT_DURATION": "15",
    }
    breaker = breaker_from_env(
        "payments",
        environ=environ,
        failure_threshold=1,
        wait_duration=2.0,
        failure_rate_threshold=25,
        minimum_calls=4,
    )
    options = breaker.options()
    assert options["failure_threshold"] == 9  # per-name variable
    assert options["wait_duration"] == 15.0  # global variable over the keyword
    assert options["failure_rate_threshold"] == 25  # keyword over the profile
    assert options["minimum_calls"] == 4  # keyword over the default
    other = breaker_from_env("orders", environ=environ)
    assert other.options()["failure_threshold"] == 7  # global variable over the profile
    assert other.options()["failure_rate_threshold"] == 40  # profile over the default


def test_per_name_variables_of_a_longer_name_do_not_apply() -> None:
    environ = {"FASTBREAKER_PAY_V2_WAIT_DURATION": "5"}
    assert breaker_from_env("pay", environ=environ).options()["wait_duration"] == 60.0
    assert breaker_from_env("pay-v2", environ=environ).options()["wait_duration"] == 5.0


@pytest.mark.parametrize(
    ("env", "threshold", "wait", "rate"),
    [
        ("development", 10, 180.0, 70),
        ("staging", 5, 90.0, 50),
        ("production", 3, 60.0, 40),
        ("testing", 20, 300.0, 90),
        (" Production ", 3, 60.0, 40),
    ],
)
def test_profiles(env: str, threshold: int, wait: float, rate: float) -> None:
    options = breaker_from_env("p", environ={"FASTBREAKER_ENV": env}).options()
    assert options["failure_threshold"] == threshold
    assert options["wait_duration"] == wait
    assert options["failure_rate_threshold"] == rate


def test_profiles_table_matches_the_issue() -> None:
    assert {k: dict(v) for k, v in PROFILES.items()} == {
        "development": {
            "failure_threshold": 10,
            "wait_duration": 180.0,
            "failure_rate_threshold": 70.0,
        },
        "staging": {"failure_threshold": 5, "wait_duration": 90.0, "failure_rate_threshold": 50.0},
        "production": {
            "failure_threshold": 3,
            "wait_duration": 60.0,
            "failure_rate_threshold": 40.0,
        },
        "testing": {
            "failure_threshold": 20,
            "wait_duration": 300.0,
            "failure_rate_threshold": 90.0,
        },
    }


def test_empty_profile_variable_means_no_profile() -> None:
    options = breaker_from_env("p", environ={"FASTBREAKER_ENV": ""}).options()
    assert options["failure_threshold"] == 5
    assert options["failure_rate_threshold"] is None


def test_unknown_profile_names_the_variable_and_value() -> None:
    with pytest.raises(ValueError, match=r"FASTBREAKER_ENV must be one of .*'prod'.*got 'qa'"):
        breaker_from_env("p", environ={"FASTBREAKER_ENV": "qa"})


def test_profile_does_not_apply_to_limiters() -> None:
    limiter = limiter_from_env("l", environ={"FASTBREAKER_ENV": "production"}, rate=5)
    assert limiter.rate == 5.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FASTBREAKER_X_FAILURE_THRESHOLD", "three", "must be an integer, got 'three'"),
        ("FASTBREAKER_X_MINIMUM_CALLS", "2.5", "must be an integer, got '2.5'"),
        ("FASTBREAKER_X_MINIMUM_CALLS", "", "must be an integer, got ''"),
        ("FASTBREAKER_WAIT_DURATION", "soon", "must be a finite number, got 'soon'"),
        ("FASTBREAKER_X_WAIT_DURATION", "nan", "must be a finite number, got 'nan'"),
        ("FASTBREAKER_X_JITTER", "inf", "must be a finite number, got 'inf'"),
        ("FASTBREAKER_X_MEASURE_DURATIONS", "maybe", "must be one of .*got 'maybe'"),
    ],
)
def test_unparsable_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable} {message}"):
        breaker_from_env("x", environ={variable: value})


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FASTBREAKER_X_FAILURE_RATE_THRESHOLD", "120", "invalid failure_rate_threshold = 120: "),
        ("FASTBREAKER_FAILURE_THRESHOLD", "0", "invalid failure_threshold = 0: must be"),
        ("FASTBREAKER_X_JITTER", "1.5", r"invalid jitter = 1.5 \(jitter_permille = 1500\): "),
    ],
)
def test_out_of_range_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable}='{value}': {message}"):
        breaker_from_env("x", environ={variable: value})


def test_a_conflict_with_code_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"max_wait_duration .*FASTBREAKER_WAIT_DURATION='300'"):
        breaker_from_env("x", environ={"FASTBREAKER_WAIT_DURATION": "300"}, max_wait_duration=120.0)


def test_errors_that_name_no_variable_are_unchanged() -> None:
    with pytest.raises(
        ValueError,
        match=r"^invalid max_wait_duration = 1.0 .*wait_duration_ns.*given wait_duration",
    ):
        breaker_from_env("x", environ={}, wait_duration=10.0, max_wait_duration=1.0)


@pytest.mark.parametrize("off", ["none", "None", "off", "", "  "])
def test_optional_rules_can_be_turned_off(off: str) -> None:
    environ = {"FASTBREAKER_X_FAILURE_THRESHOLD": off, "FASTBREAKER_ENV": "production"}
    options = breaker_from_env("x", environ=environ, failure_rate_threshold=50).options()
    assert options["failure_threshold"] is None
    assert options["failure_rate_threshold"] == 50


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("YES", True), ("on", True), ("0", False)])
def test_booleans(raw: str, value: bool) -> None:
    environ = {"FASTBREAKER_X_MEASURE_DURATIONS": raw}
    assert breaker_from_env("x", environ=environ).options()["measure_durations"] is value


def test_integers_and_numbers_are_parsed_per_option() -> None:
    environ = {
        "FASTBREAKER_X_HALF_OPEN_MAX_CALLS": " 3 ",
        "FASTBREAKER_X_SLOW_CALL_DURATION": "2.5",
        "FASTBREAKER_X_BACKOFF_FACTOR": "2",
        "FASTBREAKER_X_MAX_WAIT_DURATION": "600",
        "FASTBREAKER_X_JITTER_SEED": "42",
        "FASTBREAKER_X_COUNT_EXCLUDED_AS_SUCCESS": "true",
    }
    options = breaker_from_env("x", environ=environ).options()
    assert options["half_open_max_calls"] == 3
    assert options["slow_call_duration"] == 2.5
    assert options["backoff_factor"] == 2.0
    assert options["max_wait_duration"] == 600.0
    assert options["count_excluded_as_success"] is True


def test_window_seconds_from_the_environment_replaces_a_count_window_in_code() -> None:
    environ = {"FASTBREAKER_X_WINDOW_SECONDS": "60"}
    options = breaker_from_env("x", environ=environ, window=50).options()
    assert options["window_seconds"] == 60.0
    assert "window" not in options


def test_count_window_from_the_environment_replaces_a_time_window_and_its_buckets() -> None:
    environ = {"FASTBREAKER_WINDOW": "20"}
    options = breaker_from_env("x", environ=environ, window_seconds=60.0, buckets=6).options()
    assert options["window"] == 20
    assert "window_seconds" not in options


def test_buckets_from_the_environment_go_with_a_time_window_from_code() -> None:
    environ = {"FASTBREAKER_X_BUCKETS": "5"}
    options = breaker_from_env("x", environ=environ, window_seconds=60.0).options()
    assert options["window_seconds"] == 60.0
    assert options["buckets"] == 5


def test_window_seconds_none_in_the_environment_means_a_count_window() -> None:
    environ = {"FASTBREAKER_X_WINDOW_SECONDS": "none"}
    options = breaker_from_env("x", environ=environ, window_seconds=60.0, buckets=6).options()
    assert options["window"] == 100
    assert "window_seconds" not in options


def test_keywords_without_a_variable_pass_through() -> None:
    def fallback() -> str:
        return "cached"

    breaker = breaker_from_env("x", environ={}, fallback=fallback, exclude=[KeyError])
    assert breaker.fallback is fallback


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTBREAKER_OS_ENV_TEST_WAIT_DURATION", "12")
    assert breaker_from_env("os-env-test").options()["wait_duration"] == 12.0


def test_cls_builds_that_class() -> None:
    class Mine(CircuitBreaker):
        __slots__ = ()

    breaker = breaker_from_env("x", cls=Mine, environ={"FASTBREAKER_X_FAILURE_THRESHOLD": "2"})
    assert type(breaker) is Mine
    assert breaker.options()["failure_threshold"] == 2
    with pytest.raises(TypeError, match="cls must be a CircuitBreaker subclass"):
        breaker_from_env("x", cls=dict, environ={})  # type: ignore[type-var]


def test_limiter_from_env_precedence() -> None:
    environ = {"FASTBREAKER_API_RATE": "50", "FASTBREAKER_RATE": "7", "FASTBREAKER_BURST": "3"}
    limiter = limiter_from_env("api", environ=environ, rate=1, per=2.0, burst=1)
    assert type(limiter) is RateLimiter
    assert (limiter.name, limiter.rate, limiter.per, limiter.burst) == ("api", 50.0, 2.0, 3)
    other = limiter_from_env("other", environ=environ, rate=1)
    assert (other.rate, other.burst) == (7.0, 3)


def test_limiter_burst_none_means_the_default_burst() -> None:
    environ = {"FASTBREAKER_API_BURST": "none"}
    assert limiter_from_env("api", environ=environ, rate=4, burst=1).burst == 4


def test_limiter_needs_a_rate() -> None:
    with pytest.raises(TypeError, match=r"needs a rate: pass rate=.* FASTBREAKER_API_RATE"):
        limiter_from_env("api", environ={})


def test_limiter_bad_values_name_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^FASTBREAKER_API_RATE='0': invalid rate = 0: must be"):
        limiter_from_env("api", environ={"FASTBREAKER_API_RATE": "0"})
    with pytest.raises(ValueError, match=r"^FASTBREAKER_API_PER must be a finite number"):
        limiter_from_env("api", environ={"FASTBREAKER_API_PER": "1s"}, rate=1)


def test_limiter_cls() -> None:
    class Mine(RateLimiter):
        __slots__ = ()

    assert type(limiter_from_env("l", cls=Mine, environ={}, rate=1)) is Mine
    with pytest.raises(TypeError, match="cls must be a RateLimiter subclass"):
        limiter_from_env("l", cls=CircuitBreaker, environ={}, rate=1)  # type: ignore[type-var]


def test_a_conflict_between_variables_names_both() -> None:
    # rate=10 is fine alone; per=1e-9 makes it 10 tokens per nanosecond.
    environ = {"FASTBREAKER_API_RATE": "10", "FASTBREAKER_API_PER": "1e-9"}
    with pytest.raises(ValueError) as info:
        limiter_from_env("api", environ=environ)
    message = str(info.value)
    assert message.startswith(
        "FASTBREAKER_API_RATE='10', FASTBREAKER_API_PER='1e-9': invalid rate = 10: must"
    )
    environ = {"FASTBREAKER_X_WAIT_DURATION": "300", "FASTBREAKER_X_MAX_WAIT_DURATION": "120"}
    with pytest.raises(ValueError) as info:
        breaker_from_env("x", environ=environ)
    assert str(info.value).startswith(
        "FASTBREAKER_X_MAX_WAIT_DURATION='120', FASTBREAKER_X_WAIT_DURATION='300': "
        "invalid max_wait_duration = 120.0"
    )


@pytest.mark.parametrize(
    ("option", "raw"),
    [
        ("FAILURE_THRESHOLD", "1e3"),
        ("FAILURE_THRESHOLD", "true"),
        ("FAILURE_THRESHOLD", "-1"),
        ("FAILURE_THRESHOLD", "99999999999999999999999999"),
        ("MINIMUM_CALLS", "inf"),
        ("JITTER_SEED", "-1"),
        ("JITTER_SEED", "99999999999999999999999999"),
        ("WAIT_DURATION", "-inf"),
        ("WAIT_DURATION", " NaN "),
        ("WAIT_DURATION", "-5"),
        ("WAIT_DURATION", "1e300"),
        ("WAIT_DURATION", "1e999"),
        ("MEASURE_DURATIONS", "2"),
    ],
)
def test_odd_values_raise_naming_the_variable_and_value(option: str, raw: str) -> None:
    variable = f"FASTBREAKER_X_{option}"
    with pytest.raises(ValueError, match=f"^{variable}") as info:
        breaker_from_env("x", environ={variable: raw})
    assert repr(raw) in str(info.value)
