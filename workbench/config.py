"""Typed run configs: dataclasses <-> YAML, ``key=value`` overrides, validation.

Every experiment kind declares one dataclass deriving from ``RunConfig``. Fields carry their
help text, unit, valid choices and valid range (``option(..., ge=1)``) in
``field(metadata=...)`` so that validation, the CLI and the app's launch form are all
generated from the same declaration: a value out of range fails when the config is built
(YAML, ``key=value`` overrides, the launch form, ``from_dict``), before any run exists.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

import yaml

from workbench.errors import ConfigError
from workbench.registry import RegistryNames


@dataclass(frozen=True)
class Bounds:
    """The valid range of a numeric option (or of each item of a list option).

    ``ge`` / ``gt``: lower bound, inclusive / exclusive; ``le`` / ``lt``: upper bound.
    Floats must also be finite unless ``finite=False``.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = True

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        if self.finite and isinstance(value, float) and not math.isfinite(value):
            return False
        return not ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                    or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))

    def describe(self, integer: bool, unit: str = "") -> str:
        """'an integer >= 1', 'a finite number > 0', 'a number in [0, 1)' (+ the unit)."""
        low = (f"[{_num(self.ge)}" if self.ge is not None else
               f"({_num(self.gt)}" if self.gt is not None else None)
        high = (f"{_num(self.le)}]" if self.le is not None else
                f"{_num(self.lt)})" if self.lt is not None else None)
        what = "an integer" if integer else "a number" if (low and high) or not self.finite else "a finite number"
        if low and high:
            text = f"{what} in {low}, {high}"
        elif low:
            text = f"{what} {'>=' if self.ge is not None else '>'} {low[1:]}"
        elif high:
            text = f"{what} {'<=' if self.le is not None else '<'} {high[:-1]}"
        else:
            text = what
        return f"{text} ({unit})" if unit else text

    def int_limits(self) -> tuple[int | None, int | None]:
        """(min, max) an integer input may take, e.g. for a number widget."""
        low = (math.ceil(self.ge) if self.ge is not None else
               math.floor(self.gt) + 1 if self.gt is not None else None)
        high = (math.floor(self.le) if self.le is not None else
                math.ceil(self.lt) - 1 if self.lt is not None else None)
        return low, high


FINITE = Bounds()  # what every float is held to when it declares no range


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else repr(float(bound))


def option(default: Any, help: str = "", choices: Iterable[str] | None = None, *, unit: str = "",
           ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, finite: bool = True, applies: dict[str, tuple[str, ...]] | None = None,
           **kw: Any) -> Any:
    """A dataclass field with help text and, optionally, its unit, valid choices and valid
    range: ``ge`` / ``gt`` (>= / >), ``le`` / ``lt`` (<= / <); for a list, of each item.

    Every numeric option declares a range (a test walks every registered config):
    ``option(32, "samples per step", unit="samples", ge=1)``. A field naming a registered
    thing takes the registry's names as ``choices`` (``RegistryNames("module:REGISTRY")``).
    ``applies={"arch": ("softprompt",)}``: the option only means something when the sibling
    field ``arch`` is one of those; set to anything but its default otherwise, it fails.
    """
    ranged = any(b is not None for b in (ge, gt, le, lt)) or not finite
    bounds = Bounds(ge, gt, le, lt, finite) if ranged else None
    meta = {"help": help, "choices": choices, "unit": unit, "bounds": bounds, "applies": applies or {}, **kw}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Settings of the one Trainer loop, shared by every experiment kind."""

    optimizer: str = option("adamw", "optimiser", choices=RegistryNames("workbench.train.schedulers:OPTIMIZERS"))
    lr: float = option(1e-3, "peak learning rate; 0 = no updates (an untrained baseline)", ge=0)
    weight_decay: float = option(0.01, "decoupled for AdamW, L2 for Adam/SGD", ge=0)
    momentum: float = option(0.9, "SGD momentum", ge=0, le=1, applies={"optimizer": ("sgd",)})
    scheduler: str = option("cosine", "LR schedule", choices=RegistryNames("workbench.train.schedulers:SCHEDULERS"))
    warmup_steps: int = option(0, "linear warm-up (cosine, constant)", unit="steps", ge=0,
                               applies={"scheduler": ("cosine", "constant")})
    plateau_factor: float = option(0.5, "ReduceLROnPlateau: LR multiplier on a plateau", gt=0, lt=1,
                                   applies={"scheduler": ("plateau",)})
    plateau_patience: int = option(2, "ReduceLROnPlateau patience", unit="validations", ge=0,
                                   applies={"scheduler": ("plateau",)})
    batch_size: int = option(32, "batch size", unit="samples", ge=1)
    max_epochs: int = option(10, "stop after this many epochs", unit="epochs", ge=1)
    max_steps: int = option(0, "stop after this many steps; 0 = no limit", unit="steps", ge=0)
    max_samples: int = option(0, "use only the first N training samples (debug); 0 = all",
                              unit="samples", ge=0)
    grad_clip: float = option(0.0, "clip the gradient norm to this; 0 = off", ge=0)
    val_every: int = option(0, "validate every N steps; 0 = at the end of each epoch", unit="steps", ge=0)
    early_stop_metric: str = option("", "e.g. val/loss; empty = no early stopping")
    early_stop_mode: str = option("min", "whether lower or higher is better", choices=("min", "max"))
    patience: int = option(3, "validations without improvement before stopping", unit="validations", ge=1)
    checkpoint_every: int = option(0, "save last.pt every N steps; 0 = at validation only",
                                   unit="steps", ge=0)
    keep_every_epochs: int = option(0, "also keep checkpoints/epoch-NNN.pt every N epochs (beside best.pt and "
                                       "last.pt); 0 = off", unit="epochs", ge=0)
    log_every: int = option(10, "log training scalars every N steps", unit="steps", ge=1)
    device: str = option("auto", "auto picks cuda, then mps, then cpu", choices=("auto", "cpu", "cuda", "mps"))
    amp: bool = option(True, "mixed precision (CUDA only)")
    num_workers: int = option(0, "DataLoader worker processes; 0 = load in the main process",
                              unit="processes", ge=0)
    threads: int = option(0, "torch CPU threads for this run; 0 = torch's default", unit="threads", ge=0)
    nproc: int = option(1, "processes: data-parallel ranks on this machine (torchrun + DDP, one per GPU); "
                           "batch_size is the global batch, split evenly", unit="processes", ge=1, le=1024,
                         label="processes")
    dist_timeout_s: float = option(1800.0, "distributed: a collective waiting longer than this fails the run "
                                           "(a hung rank)", unit="seconds", gt=0)
    ddp_find_unused: bool = option(False, "distributed: let DDP find parameters a step does not use (slower; "
                                          "needed when a model skips some of its trainable layers)")


@dataclass
class RunConfig:
    """Fields every run has; each experiment kind subclasses this with its own sections.

    Built configs are valid: ``__post_init__`` checks every declared choice and range (a
    subclass that adds its own ``__post_init__`` calls this one first).
    """

    # Sections the launch form shows open (the top-level fields always are); the rest start
    # collapsed. A kind lists its primary sections.
    main_sections: ClassVar[tuple[str, ...]] = ("data", "model", "train")

    kind: str = option("", "experiment kind")
    name: str = option("", "short run name (letters, digits, '-' and '_')")
    seed: int = option(0, "seeds Python, NumPy and torch", ge=0, le=2**32 - 1)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        validate(self)


# -- dataclass <-> dict ------------------------------------------------------------------


def to_dict(cfg: Any) -> dict:
    """Every field written out, nested dataclasses as dicts (the resolved config)."""
    return dataclasses.asdict(cfg)


@functools.lru_cache(maxsize=None)
def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{key}: {value} is out of range; must be a finite number") from None
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads '1e-3' as a string
            return float(value)
        except ValueError:
            pass
    if tp is Path and isinstance(value, str):
        return value
    if isinstance(value, bool) and tp is not bool:
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(
            f"{key}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    return value


def from_dict(cls: type, data: dict | None, prefix: str = "") -> Any:
    """Build ``cls`` from a (possibly partial) dict; unknown keys and wrong types fail."""
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        where = prefix.rstrip(".") or "config"
        raise ConfigError(
            f"unknown key '{prefix}{unknown[0]}' in {where}. Valid keys: {sorted(types_)}"
        )
    kwargs = {}
    for name, tp in types_.items():
        if name not in data:
            continue
        key = f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            if not isinstance(data[name], dict):
                raise ConfigError(f"{key}: expected a mapping of {sorted(_field_types(tp))}")
            # a partial section keeps the kind's own defaults for it (e.g. its TrainConfig)
            field_ = next(f for f in dataclasses.fields(cls) if f.name == name)
            base = _field_default(field_)
            section = _deep_merge(to_dict(base), data[name]) if dataclasses.is_dataclass(base) else data[name]
            kwargs[name] = from_dict(tp, section, prefix=f"{key}.")
        else:
            kwargs[name] = _coerce(data[name], tp, key)
    cfg = cls(**kwargs)
    validate(cfg, prefix)
    return cfg


def validate(cfg: Any, prefix: str = "") -> None:
    """Check the ``choices`` and ranges declared in field metadata, recursively; floats
    must be finite. Raises ConfigError naming the key, the value and what is valid."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not valid. Choose one of {list(choices)}")
        if dataclasses.is_dataclass(value):
            validate(value, f"{key}.")
            continue
        bounds, unit = f.metadata.get("bounds"), f.metadata.get("unit", "")
        items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
        for i, item in items:
            if _is_number(item) and not (bounds or FINITE).contains(item):
                where = key if i is None else f"{key}[{i}]"
                rule = (bounds or FINITE).describe(isinstance(item, int), unit)
                raise ConfigError(f"{where}: {item!r} is out of range; must be {rule}")
    for f in dataclasses.fields(cfg):  # after the ranges: a bad value is reported as such first
        _check_applies(cfg, f, getattr(cfg, f.name), prefix)


def _deep_merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _field_default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _check_applies(cfg: Any, f: dataclasses.Field, value: Any, prefix: str) -> None:
    """An option set for an architecture (scheduler, head, ...) that is not the chosen one
    would be silently ignored: refuse it, naming the option and the choice it belongs to."""
    for selector, allowed in f.metadata.get("applies", {}).items():
        chosen = getattr(cfg, selector)
        default = _field_default(f)
        if chosen not in allowed and value != default:
            raise ConfigError(
                f"{prefix}{f.name}={value!r} applies only to {prefix}{selector}="
                f"{' / '.join(allowed)}, but {prefix}{selector} is {chosen!r}: remove it (default "
                f"{default!r}) or set {prefix}{selector} to {' / '.join(allowed)}")


def applicable(cls: type, section: dict) -> dict:
    """``section`` (a dict of ``cls``'s fields) without the options that do not apply to the
    choices it makes, e.g. before switching ``arch`` on a copied config."""
    out = dict(section)
    for f in dataclasses.fields(cls):
        for selector, allowed in f.metadata.get("applies", {}).items():
            if out.get(selector, _field_default(next(g for g in dataclasses.fields(cls) if g.name == selector))) not in allowed:
                out.pop(f.name, None)
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def range_text(doc: dict) -> str:
    """What a ``field_docs`` row accepts, e.g. 'an integer >= 1 (samples)'; '' if not numeric."""
    tp = doc["type"]
    item = (typing.get_args(tp) or (None,))[0] if typing.get_origin(tp) in (list, tuple) else tp
    if item not in (int, float):
        return ""
    text = (doc["bounds"] or FINITE).describe(item is int, doc.get("unit", ""))
    return f"each item {text}" if item is not tp else text


# -- YAML and overrides ------------------------------------------------------------------


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    return data


def write_yaml(cfg: Any, path: str | Path) -> None:
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    Path(path).write_text(yaml.safe_dump(_plain(data), sort_keys=False))


def _plain(value: Any) -> Any:
    """Tuples and Paths as YAML-safe lists and strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], parsed value). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (e.g. train.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}': empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str], cls: type) -> dict:
    """Merge ``key=value`` overrides into a config dict, typed by the dataclass ``cls``.

    String fields keep the raw text (so ``name=007`` stays "007"); other fields take the
    YAML-parsed value and are type-checked when the config is built.
    """
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for text in overrides:
        path, value = parse_override(text)
        node, node_cls = data, cls
        for depth, part in enumerate(path):
            types_ = _field_types(node_cls)
            if part not in types_:
                where = ".".join(path[:depth]) or "config"
                raise ConfigError(
                    f"unknown key '{'.'.join(path[: depth + 1])}' in {where}. "
                    f"Valid keys: {sorted(types_)}"
                )
            tp = types_[part]
            if depth == len(path) - 1:
                if dataclasses.is_dataclass(tp):
                    raise ConfigError(f"'{'.'.join(path)}' is a section; set one of its keys")
                node[part] = text.split("=", 1)[1] if tp is str else value
            else:
                if not dataclasses.is_dataclass(tp):
                    raise ConfigError(f"'{'.'.join(path[: depth + 1])}' has no sub-keys")
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(f"'{'.'.join(path[: depth + 1])}' must be a mapping")
                node_cls = tp
    return data


def field_docs(cls: type, prefix: str = "") -> list[dict]:
    """Flat description of every leaf field: key, type, default, help, unit, choices and
    bounds (``Bounds`` or None), and ``range``, the valid values in words (for forms)."""
    rows = []
    default = cls()
    for f in dataclasses.fields(cls):
        tp = _field_types(cls)[f.name]
        if dataclasses.is_dataclass(tp):
            rows += field_docs(tp, prefix=f"{prefix}{f.name}.")
            continue
        rows.append(
            {
                "key": f"{prefix}{f.name}",
                "type": tp,
                "default": getattr(default, f.name),
                "help": f.metadata.get("help", ""),
                "choices": None if f.metadata.get("choices") is None else tuple(f.metadata["choices"]),
                "unit": f.metadata.get("unit", ""),
                "label": f.metadata.get("label"),  # a form's label when the key's last part is not one
                "bounds": f.metadata.get("bounds"),
                "applies": {f"{prefix}{sel}": tuple(allowed)
                            for sel, allowed in f.metadata.get("applies", {}).items()},
            }
        )
        rows[-1]["range"] = range_text(rows[-1])
    return rows


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def unflatten(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
