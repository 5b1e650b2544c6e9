"""Where the Geolocate and Errors pages find models and predictions.

A source is a checkpoint bundle under ``checkpoints/`` (``export checkpoint``; the demo
first) or a geolocator run of the run store. Only the file system is read here (YAML
configs), so listing is fast and loads no model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from workbench.paths import CHECKPOINTS

DEMO_BUNDLE = CHECKPOINTS / "geolocator-demo"


@dataclass(frozen=True)
class Source:
    label: str  # "checkpoint: geolocator-demo", "run: geolocator-2026..."
    kind: str  # "checkpoint" | "run"
    path: Path  # bundle folder or run folder

    @property
    def predictions_folder(self) -> Path:
        return self.path / "artifacts" if self.kind == "run" else self.path

    def stamp(self) -> int:
        """mtime (ns) of the newest checkpoint / predictions file: a cache key that changes
        when a run writes a new checkpoint."""
        files = [self.path / "model.pt", self.path / "checkpoints" / "best.pt", self.path / "checkpoints" / "last.pt",
                 self.predictions_folder / "predictions.parquet"]
        return max((f.stat().st_mtime_ns for f in files if f.is_file()), default=0)


def _is_geolocator(config: Path) -> bool:
    try:
        return (yaml.safe_load(config.read_text()) or {}).get("kind") == "geolocator"
    except (OSError, yaml.YAMLError):
        return False


def list_sources(runs_root: str | Path | None = None, checkpoints_root: str | Path = CHECKPOINTS,
                 need: str = "model") -> list[Source]:
    """Geolocator bundles (the demo first), then geolocator runs, newest first.

    need: "model" (a checkpoint file exists) or "predictions" (predictions.parquet exists).
    """
    from workbench.runs import RunStore

    def usable(src: Source) -> bool:
        if need == "predictions":
            return (src.predictions_folder / "predictions.parquet").is_file()
        if src.kind == "checkpoint":
            return (src.path / "model.pt").is_file()
        return (src.path / "checkpoints" / "best.pt").is_file() or (src.path / "checkpoints" / "last.pt").is_file()

    out: list[Source] = []
    root = Path(checkpoints_root)
    if root.is_dir():
        folders = sorted((p for p in root.iterdir() if p.is_dir() and _is_geolocator(p / "config.yaml")),
                         key=lambda p: (p.name != DEMO_BUNDLE.name, p.name))
        out += [Source(f"checkpoint: {p.name}", "checkpoint", p) for p in folders]
    try:
        runs = RunStore(runs_root).list()
    except Exception:  # an unreadable runs folder must not hide the demo bundle
        runs = []
    out += [Source(f"run: {r.id}", "run", r.path) for r in runs if _is_geolocator(r.config_path)]
    return [s for s in out if usable(s)]
