"""Every committed demo bundle carries embedding sets the Embeddings page can read: rows
match the vectors, ids are unique, locations are in range, and the paired sets link their
points by group."""
import numpy as np
import pytest

from workbench.embeddings.sets import list_sets, read_set
from workbench.paths import CHECKPOINTS

DEMOS = sorted(p.name for p in CHECKPOINTS.iterdir() if p.is_dir() and p.name.endswith("-demo"))
EXPECTED = {"clip-demo": {"paired"}, "projection-demo": {"paired"}, "satclip-demo": {"paired"},
            "geolocator-demo": {"features", "logits"}, "softprompt-demo": {"location", "predicted"}}


def test_every_line_has_a_demo_with_embeddings():
    assert set(DEMOS) == set(EXPECTED)


@pytest.mark.parametrize("demo", DEMOS)
def test_the_demo_sets_are_readable_and_consistent(demo, tmp_path):
    refs = [r for r in list_sets(tmp_path / "runs") if r.source == f"checkpoint: {demo}"]
    assert {r.name for r in refs} == EXPECTED[demo]
    for ref in refs:
        s = read_set(ref)
        assert len(s) > 100 and np.isfinite(np.asarray(s.vectors)).all()
        lat = s.meta["lat"].to_numpy(np.float64)
        assert np.nanmax(np.abs(lat)) <= 90 and np.isfinite(lat).mean() > 0.9
        if s.meta["modality"].nunique() > 1:  # pairs: every group holds more than one modality
            per_group = s.meta.groupby("group")["modality"].nunique()
            assert (per_group >= 2).mean() > 0.9
