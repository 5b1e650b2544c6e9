"""Well-known locations inside the repository."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "assets"
CHECKPOINTS = REPO_ROOT / "checkpoints"
STATIC = REPO_ROOT / "static"
