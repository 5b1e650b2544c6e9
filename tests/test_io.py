"""Atomic writes (workbench.io): whole files or the previous file, never half of one."""
import json
import math
import stat

import numpy as np
import pytest

from workbench import io


def test_write_text_bytes_and_json(tmp_path):
    assert io.write_text(tmp_path / "a" / "b.txt", "hello").read_text() == "hello"  # parents made
    assert io.write_bytes(tmp_path / "c.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    io.write_json(tmp_path / "m.json", {"x": float("nan"), "y": [np.float32(0.5), np.int64(3), math.inf]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": None, "y": [0.5, 3, None]}


def test_a_failure_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    path = io.write_text(tmp_path / "status.json", "old")
    with pytest.raises(RuntimeError):
        with io.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


def test_the_file_gets_the_mode_not_mkstemps_owner_only(tmp_path):
    path = io.write_text(tmp_path / "shared.txt", "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path = io.write_text(tmp_path / "private.txt", "x", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_json_safe_converts_numpy_and_non_finite_values():
    assert io.json_safe({"a": (np.float64(1.5), np.nan), "b": {"c": np.bool_(True)}}) == {"a": [1.5, None], "b": {"c": True}}
