"""``python -m workbench data build-demo``: every demo dataset and the static web assets."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from workbench.paths import STATIC


def build_all(root: Path, only: list[str] | None = None, force: bool = False) -> dict[str, Any]:
    from workbench.data.demo import build_demo
    from workbench.data.static_assets import build_static

    report: dict[str, Any] = {}
    if not only or "static" in only:
        report["static"] = [str(p) for p in build_static(STATIC, force=force)]
    datasets = [name for name in only or [] if name != "static"] or None
    if not only or datasets:
        report["datasets"] = build_demo(root, only=datasets, force=force,
                                        progress=lambda msg: print(msg, file=sys.stderr))
    return report
