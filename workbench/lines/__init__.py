"""Research lines: one folder each, found by discovery, never imported by the core.

A line is a package: ``workbench/lines/<name>/`` (every sub-package of this one), or a
package named in ``WORKBENCH_PLUGINS`` (comma-separated module names). Its ``__init__.py``
stays light (no torch) and may declare:

    TITLE = "Geolocator"                  # its section in the app's navigation
    PAGES = ("4_Geolocate.py",)           # its page files: in the line's folder, else pages/

and the core imports, by name and only when asked, whichever of these it has:

| part | what the core does with it |
| --- | --- |
| ``experiment`` | imported by ``load_kinds()``: registers the line's experiment kind(s) |
| ``cli`` | imported by ``python -m workbench``: registers its subcommands |
| ``bench`` | ``python -m workbench bench <name>`` calls its ``run(quick)`` |
| ``retrieval`` | the Retrieval page serves its image-text models (``workbench.contrastive.serving``) |
| ``configs/*.yaml`` | presets, found by name (``train geolocator-demo``) |
| ``configs/studies/*.yaml`` | study specs, found by name (``tune projection-heads``) |

A module in ``WORKBENCH_PLUGINS`` that is not a package is imported as it is (it registers
what it registers, e.g. one experiment kind).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from workbench.errors import ConfigError, NotFoundError
from workbench.paths import REPO_ROOT

PAGES_DIR = REPO_ROOT / "pages"
PARTS = ("experiment", "cli", "bench", "retrieval")


@dataclass(frozen=True)
class Line:
    name: str  # "geolocator"; a plugin's is its last module component
    module: str  # "workbench.lines.geolocator", "mypkg.myline"
    path: Path  # the package folder
    title: str  # navigation section
    pages: tuple[Path, ...]  # page files, absolute
    builtin: bool

    @property
    def configs(self) -> Path:
        return self.path / "configs"

    def has(self, part: str) -> bool:
        return (self.path / f"{part}.py").is_file() or (self.path / part / "__init__.py").is_file()

    def part(self, part: str) -> ModuleType | None:
        """Import ``<module>.<part>`` (None when the line has no such part)."""
        return importlib.import_module(f"{self.module}.{part}") if self.has(part) else None


def plugin_modules() -> list[str]:
    """Module names in ``WORKBENCH_PLUGINS`` (comma-separated; blanks ignored)."""
    return [n.strip() for n in os.environ.get("WORKBENCH_PLUGINS", "").split(",") if n.strip()]


def import_plugin(name: str) -> ModuleType:
    """Import one plugin module; any failure (missing module, an error in its code) is one
    ConfigError line naming the variable and the module, never a traceback."""
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a plugin is user code: whatever it raises, say which one
        lines = str(exc).strip().splitlines()
        reason = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise ConfigError(f"WORKBENCH_PLUGINS names the module '{name}', which could not be imported "
                          f"({reason}); fix it or remove it from WORKBENCH_PLUGINS "
                          "(comma-separated Python module names, e.g. mypkg.my_experiment)") from None


def _line(module: ModuleType, builtin: bool) -> Line:
    path = Path(module.__file__).parent
    name = module.__name__.rsplit(".", 1)[-1]
    pages = []
    for entry in getattr(module, "PAGES", ()):
        own = path / entry
        pages.append(own if own.is_file() else PAGES_DIR / entry)
    return Line(name=name, module=module.__name__, path=path, title=getattr(module, "TITLE", name.title()),
                pages=tuple(pages), builtin=builtin)


def lines_builtin() -> list[Line]:
    """The lines in ``workbench/lines/``, alphabetical."""
    return [_line(importlib.import_module(f"{__name__}.{m.name}"), builtin=True)
            for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if m.ispkg]


def _is_package(name: str) -> bool:
    """Whether plugin ``name`` is a package, found without importing it: a plain plugin
    module (one experiment kind, importing torch) costs seconds, and the command line builds
    its parser, a background job's first heartbeat included, before it needs any kind."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        import_plugin(name)  # raises the one-line ConfigError naming the module
    return spec.submodule_search_locations is not None


def lines() -> list[Line]:
    """The built-in lines (alphabetical), then every plugin package, in the variable's order.
    Only packages are imported (their light ``__init__``); plain plugin modules are not."""
    out = lines_builtin()
    for name in plugin_modules():
        if _is_package(name) and not any(line.module == name for line in out):
            out.append(_line(import_plugin(name), builtin=False))
    return out


def plain_plugins() -> list[ModuleType]:
    """Plugin modules that are not line packages (imported; they register on import)."""
    return [import_plugin(name) for name in plugin_modules() if not _is_package(name)]


def load_parts(part: str) -> list[ModuleType]:
    """Import ``part`` of every line that has it (``experiment``, ``cli``, ``bench``)."""
    if part not in PARTS:
        raise ValueError(f"unknown line part {part!r}; one of {PARTS}")
    return [m for m in (line.part(part) for line in lines()) if m is not None]


def get(name: str) -> Line:
    found = {line.name: line for line in lines()}
    if name not in found:
        raise NotFoundError(f"research line '{name}' not found. Available: {sorted(found)}")
    return found[name]


def presets(folder: str = "") -> dict[str, Path]:
    """Every line's YAML presets by name (file stem): {"geolocator-demo": .../geolocator-demo.yaml};
    ``folder="studies"``: the study specs in ``configs/studies/``."""
    out: dict[str, Path] = {}
    for line in lines():
        where = line.configs / folder
        for path in sorted(where.glob("*.yaml")) if where.is_dir() else []:
            out.setdefault(path.stem, path)
    return out


def resolve_config(name_or_path: str | Path, folder: str = "") -> Path:
    """A YAML file path as given, or the preset of that name; else a NotFoundError listing both."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    found = presets(folder)
    what = "study spec" if folder == "studies" else "config"
    key = path.stem if path.suffix in (".yaml", ".yml") and len(path.parts) == 1 else str(name_or_path)
    if key in found:
        return found[key]
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise ConfigError(f"{what} file not found: {path} (or name a preset: {sorted(found)})")
    raise NotFoundError(f"{what} '{name_or_path}' is neither a YAML file nor a preset. "
                        f"Presets: {sorted(found)}")

