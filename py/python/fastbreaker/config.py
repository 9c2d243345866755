"""A registry of breakers, limiters, bulkheads and retry policies from one configuration.

``load_config(source)`` reads a dict, or a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file,
and registers what it names in a ``Registry`` (the process-wide ``fastbreaker.registry``
unless given another)::

    [breakers.payments]
    failure_threshold = 5
    wait_duration = 30.0

    [limiters.github]
    rate = 5000
    per = 3600

    [bulkheads.db]
    max_concurrent = 10

    [retries.http]
    attempts = 4
    base_delay = 0.2

    [defaults.breaker]          # every breaker of the file, below its own section
    failure_rate_threshold = 50.0

    [profiles.prod.breakers.payments]   # applied on top when the environment is prod
    wait_duration = 60.0

Sections: ``breakers``, ``limiters``, ``bulkheads``, ``retries`` (each a table of names to
options, the constructors' keywords: ``CircuitBreaker``, ``RateLimiter(rate, per, burst)``,
``Bulkhead(max_concurrent)``, ``retry``), ``defaults`` (``breaker``, ``limiter``, ``retry``:
options for every object of that kind) and ``profiles`` (per environment, the same sections
again, merged over the base ones). Any other key is a ``ValueError`` naming it.

The environment is ``env`` if given, else ``FASTBREAKER_ENV``; both accept the full names
(``development``, ``staging``, ``production``, ``testing``) and the aliases ``dev``,
``stage``, ``prod``, ``test``, in any case, and so do the keys under ``profiles``.

Per option, the first of: ``FASTBREAKER_<NAME>_<OPTION>``, ``FASTBREAKER_<OPTION>``
(variables, as for ``CircuitBreaker.from_env``; for retries ``FASTBREAKER_<NAME>_RETRY_...``
and ``FASTBREAKER_RETRY_...``), the profile's section, the object's section, the file's
``defaults``, the built-in profile of ``fastbreaker.env.PROFILES`` (breakers), and the
constructor's default.

Loading again (a changed file) compares with what is registered: an object whose settings
differ raises ``ConfigMismatchError``, unless ``reconfigure=True``, which applies the new
settings in place (see ``Registry.get_or_create``). Nothing is registered when the
configuration has an error: every object is built and checked first.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

from . import env as _env
from ._registry import Registry
from ._registry import registry as _default_registry

__all__ = ["load_config", "read_config_file"]

_SECTIONS = ("breakers", "limiters", "bulkheads", "retries")
_DEFAULT_KINDS = {"breaker": "breakers", "limiter": "limiters", "retry": "retries"}
_TOP = frozenset((*_SECTIONS, "defaults", "profiles"))

Source = Union[Mapping[str, Any], str, "os.PathLike[str]"]


def read_config_file(path: Union[str, os.PathLike[str]]) -> dict[str, Any]:
    """The contents of a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file as a dict.

    TOML needs Python 3.11 (``tomllib``) or the ``tomli`` package; YAML needs ``pyyaml``
    (``pip install fastbreaker[yaml]``): without them an ``ImportError`` says what to install.
    """
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".json":
        with file.open("rb") as f:
            data = json.load(f)
    elif suffix == ".toml":
        try:
            import tomllib as toml  # type: ignore[import-not-found,unused-ignore]
        except ImportError:  # pragma: no cover - Python < 3.11
            try:
                import tomli as toml  # type: ignore[import-not-found,no-redef,unused-ignore]
            except ImportError as exc:
                raise ImportError(
                    f"reading {file} needs tomllib (Python 3.11+) or tomli: pip install tomli"
                ) from exc
        with file.open("rb") as f:
            data = toml.load(f)
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:  # pragma: no cover - pyyaml is a test dependency
            raise ImportError(
                f"reading {file} needs pyyaml: pip install 'fastbreaker[yaml]'"
            ) from exc
        with file.open("rb") as f:
            data = yaml.safe_load(f)
    else:
        raise ValueError(f"path must name a .toml, .yaml, .yml or .json file, got {str(file)!r}")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(
            f"{file} must hold a table (a mapping) at the top, got {type(data).__name__}"
        )
    return data


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a table (a mapping), got {value!r}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{where} keys must be strings, got {key!r}")
    return dict(value)


def _check_top(data: Mapping[str, Any], where: str, allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(allowed)}")


def _merged(base: Mapping[str, Any], over: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``base`` with ``over`` merged in, two levels deep (section -> name -> options)."""
    out: dict[str, Any] = {k: dict(_table(v, f"{where}.{k}")) for k, v in base.items()}
    for section, names in over.items():
        names = _table(names, f"{where}.{section}")
        target = out.setdefault(section, {})
        for name, options in names.items():
            merged = dict(_table(target.get(name, {}), f"{where}.{section}.{name}"))
            merged.update(_table(options, f"{where}.{section}.{name}"))
            target[name] = merged
    return out


def _layered(data: Mapping[str, Any], profile: Optional[str]) -> dict[str, Any]:
    """The sections of ``data`` with its ``defaults`` and the profile's sections applied."""
    _check_top(data, "config", _TOP)
    base = {k: _table(data.get(k, {}), k) for k in _SECTIONS}
    defaults = _table(data.get("defaults", {}), "defaults")
    _check_top(defaults, "defaults", frozenset(_DEFAULT_KINDS))
    profiles: dict[str, Any] = {}
    for key, value in _table(data.get("profiles", {}), "profiles").items():
        name = _env.profile_name(key, f"profiles key {key!r}")
        if name in profiles:
            raise ValueError(f"profiles: {key!r} names the profile {name!r} twice")
        sections_of = _table(value, f"profiles.{key}")
        _check_top(sections_of, f"profiles.{key}", frozenset(_SECTIONS))
        profiles[name] = sections_of
    sections = _merged(base, profiles.get(profile, {}) if profile else {}, "config")
    for kind, plural in _DEFAULT_KINDS.items():
        common = _table(defaults.get(kind, {}), f"defaults.{kind}")
        sections[plural] = {
            name: {**common, **_table(options, f"{plural}.{name}")}
            for name, options in sections[plural].items()
        }
    return sections


def load_config(
    source: Source,
    *,
    env: Optional[str] = None,
    registry: Optional[Registry] = None,
    reconfigure: bool = False,
    environ: Optional[Mapping[str, str]] = None,
) -> Registry:
    """Registers the breakers, limiters, bulkheads and retry policies of ``source`` (a dict or
    a file path) in ``registry`` (default: ``fastbreaker.registry``) and returns it.

    ``env`` picks the profile (default ``FASTBREAKER_ENV``; aliases accepted); ``environ``
    replaces ``os.environ`` for the variables. See the module docs for the format and the
    precedence. Errors (``ValueError``/``TypeError``) name the section, the object and the
    option, or the variable that set it; nothing is registered when any object is invalid.
    """
    data = read_config_file(source) if isinstance(source, (str, os.PathLike)) else source
    data = _table(data, "config")
    environment: Mapping[str, str] = os.environ if environ is None else environ
    raw_env = env if env is not None else environment.get(_env.PROFILE_VARIABLE, "")
    profile = _env.profile_name(raw_env, "env") if raw_env.strip() else None
    sections = _layered(data, profile)
    target = _default_registry if registry is None else registry
    builtin = _env.PROFILES[profile] if profile else {}

    # Resolve and check everything (settings, conflicts with live objects) before
    # registering anything.
    plans: list[Callable[[], object]] = []
    for name, options in sections["breakers"].items():
        resolved, sources = _env._collect(
            name, _env._BREAKER_OPTIONS, options, environment, builtin
        )
        plans.append(_plan(target, "breakers", name, resolved, sources, reconfigure))
    for name, options in sections["limiters"].items():
        resolved, sources = _env._collect(name, _env._LIMITER_OPTIONS, options, environment, {})
        resolved.pop("shared", None)
        if "rate" not in resolved:
            raise TypeError(
                f"limiters.{name}: needs a rate (in the file, or {_env.ENV_PREFIX}"
                f"{_env.env_name(name)}_RATE)"
            )
        plans.append(_plan(target, "limiters", name, resolved, sources, reconfigure))
    for name, options in sections["bulkheads"].items():
        plans.append(_plan(target, "bulkheads", name, options, {}, reconfigure))
    retries: dict[str, Callable[[Callable[..., Any]], Any]] = {}
    for name, options in sections["retries"].items():

        def make(n: str = name, o: dict[str, Any] = options) -> Any:
            return _env.retry_from_env(n, environ=environment, **o)

        retries[name] = _named("retries", name, make)
    for plan in plans:
        plan()
    for name, decorator in retries.items():
        target.register_retry(name, decorator)
    return target


def _named(section: str, name: str, call: Callable[[], Any]) -> Any:
    """``call()``, its ValueError/TypeError prefixed with ``section.name``."""
    try:
        return call()
    except (ValueError, TypeError) as exc:
        exc.args = (f"{section}.{name}: {exc}", *exc.args[1:])  # same type and attributes
        raise


def _plan(
    target: Registry,
    section: str,
    name: str,
    options: dict[str, Any],
    sources: dict[str, tuple[str, str]],
    reconfigure: bool,
) -> Callable[[], object]:
    """Checks one object's settings (and their agreement with a live one of that name) now;
    returns the call that registers it."""
    kind = section[:-1]

    def build(**o: Any) -> Any:
        return target._prepare(kind, name, o, reconfigure, check_first=True)

    register = _named(section, name, lambda: _env._build(build, (), dict(options), sources))
    return lambda: _named(section, name, register)
