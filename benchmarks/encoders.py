"""Location-encoder throughput: the pretrained GeoCLIP encoder over the 100K GPS gallery.

``python -m workbench bench encoders`` -> {"geoclip_points_per_s", "geoclip_load_s", "n",
"batch_size", "threads"}; ``quick=True`` encodes the first 10K gallery points.
"""
from __future__ import annotations

import time

import torch

from workbench.data.demo_patches import gallery_latlon
from workbench.encoders import create_location_encoder, encode


def run(quick: bool = False, batch_size: int = 8192) -> dict:
    latlon = gallery_latlon()[: 10_000 if quick else None]  # (N, 2) degrees
    start = time.perf_counter()
    encoder = create_location_encoder("geoclip")
    load_s = time.perf_counter() - start
    encode(encoder, latlon[:256])  # warm-up: first-call allocations and kernel selection
    start = time.perf_counter()
    features = encode(encoder, latlon, batch_size=batch_size)
    seconds = time.perf_counter() - start
    assert features.shape == (len(latlon), 512)
    return {
        "geoclip_points_per_s": round(len(latlon) / seconds, 1),
        "geoclip_encode_s": round(seconds, 3),
        "geoclip_load_s": round(load_s, 3),
        "n": len(latlon),
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
