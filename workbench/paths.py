"""Well-known locations inside the repository."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "assets"
CHECKPOINTS = REPO_ROOT / "checkpoints"
CONFIGS = REPO_ROOT / "configs"
STATIC = REPO_ROOT / "static"
