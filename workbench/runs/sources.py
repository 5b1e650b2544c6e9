"""Where every page finds models: bundles under ``checkpoints/`` and runs of the run store.

``list_sources(kind)`` lists the bundles of that kind (``<kind>-demo`` first, then by name)
and then the runs of that kind (newest first), keeping those that have what the caller
needs: a model (``need="model"``) or an artifact file (``need="predictions.parquet"``,
``"index.pt"``: in a bundle folder itself, in a run's ``artifacts/``). Only the file system
and small YAML files are read, so listing is fast and loads no model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from workbench.paths import CHECKPOINTS
from workbench.train.bundle import MODEL_FILE, bundle_kind


@dataclass(frozen=True)
class Source:
    label: str  # "checkpoint: geolocator-demo", "run: geolocator-2026..."
    kind: str  # "checkpoint" | "run"
    path: Path  # bundle folder or run folder

    @property
    def artifacts(self) -> Path:
        """Where the source's artifacts are: the bundle folder, or the run's artifacts/."""
        return self.path / "artifacts" if self.kind == "run" else self.path

    @property
    def checkpoint(self) -> Path | None:
        """The model file: the bundle's model.pt, or the run's best.pt, else last.pt."""
        if self.kind == "checkpoint":
            files = [self.path / MODEL_FILE]
        else:
            files = [self.path / "checkpoints" / "best.pt", self.path / "checkpoints" / "last.pt"]
        return next((f for f in files if f.is_file()), None)

    def has(self, need: str) -> bool:
        return self.checkpoint is not None if need == "model" else (self.artifacts / need).is_file()

    def stamp(self, *artifacts: str) -> int:
        """Latest mtime (ns) of the model files and the named artifacts: a cache key that
        changes when a run writes a new checkpoint or an export replaces a bundle."""
        files = [self.path / MODEL_FILE, self.path / "checkpoints" / "best.pt",
                 self.path / "checkpoints" / "last.pt", *(self.artifacts / a for a in artifacts)]
        return max((f.stat().st_mtime_ns for f in files if f.is_file()), default=0)


def _run_kind(config: Path) -> str | None:
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def list_sources(kind: str, runs_root: str | Path | None = None, checkpoints_root: str | Path = CHECKPOINTS,
                 need: str = "model") -> list[Source]:
    """Bundles of ``kind`` (the demo first), then runs of ``kind``, newest first, that have
    ``need`` ("model" or an artifact file name)."""
    from workbench.runs import RunStore

    out: list[Source] = []
    root = Path(checkpoints_root)
    if root.is_dir():
        folders = sorted((p for p in root.iterdir() if p.is_dir() and bundle_kind(p) == kind),
                         key=lambda p: (p.name != f"{kind}-demo", p.name))
        out += [Source(f"checkpoint: {p.name}", "checkpoint", p) for p in folders]
    try:
        runs = RunStore(runs_root).list()
    except Exception:  # an unreadable runs folder must not hide the shipped bundles
        runs = []
    out += [Source(f"run: {r.id}", "run", r.path) for r in runs if _run_kind(r.config_path) == kind]
    return [s for s in out if s.has(need)]


def resolve_source(spec: str | Path, kind: str, runs_root: str | Path | None = None) -> Source:
    """A source from a path (bundle folder or model file, run folder, a run's checkpoint
    file) or a run id in the run store; NotFoundError naming what may be passed."""
    from workbench.errors import NotFoundError, WorkbenchError
    from workbench.runs import RunStore

    path = Path(spec).expanduser()
    if path.is_file():
        if path.parent.name == "checkpoints" and (path.parent.parent / "config.yaml").is_file():
            return Source(f"run: {path.parent.parent.name}", "run", path)  # runs/<id>/checkpoints/x.pt
        return Source(f"checkpoint: {path.parent.name}", "checkpoint", path)
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return Source(f"checkpoint: {path.name}", "checkpoint", path)
        if (path / "checkpoints").is_dir():
            return Source(f"run: {path.name}", "run", path)
    try:
        run = RunStore(runs_root).get(str(spec))
    except WorkbenchError:
        raise NotFoundError(f"no {kind} checkpoint at '{spec}': pass a bundle folder (e.g. "
                            f"{CHECKPOINTS / f'{kind}-demo'}), a model.pt, a run folder or a run id") from None
    return Source(f"run: {run.id}", "run", run.path)
