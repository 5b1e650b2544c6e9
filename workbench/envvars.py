"""Environment variables the workbench reads, parsed and range-checked in one place.

A bad value fails at once with one line naming the variable, what it holds and what it
should hold (the CLI prints it; the app shows it in an error box), rather than a traceback
or a job queue that silently never starts.
"""
from __future__ import annotations

import math
import os

from workbench.errors import ConfigError


def _bad(name: str, raw: str, want: str) -> ConfigError:
    return ConfigError(f"environment variable {name}={raw!r} is invalid: expected {want}; "
                       f"fix it (e.g. export {name}=...) or unset it")


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    """``int($name)`` within [minimum, maximum], ``default`` when unset or empty."""
    return _env_number(name, default, int, "a whole number", minimum, maximum)


def env_float(name: str, default: float, minimum: float | None = None,
              maximum: float | None = None) -> float:
    """``float($name)``, finite, within [minimum, maximum]; ``default`` when unset or empty."""
    return _env_number(name, default, float, "a finite number", minimum, maximum)


def _env_number(name: str, default, parse, what: str, minimum, maximum):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    want = _range_text(what, minimum, maximum)
    try:
        value = parse(raw)
    except ValueError:
        raise _bad(name, raw, want) from None
    if not math.isfinite(value) or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum):
        raise _bad(name, raw, want)
    return value


def _range_text(what: str, minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{what} >= {minimum}"
    if maximum is not None:
        return f"{what} <= {maximum}"
    return what
