"""Geography core: distances, metrics, S2 cells and adaptive partitions.

Everything is vectorised; distance and metric functions take numpy arrays or torch tensors
(torch is never imported by this package itself). Coordinates are (lat, lon) degrees,
distances km.
"""
from workbench.geo.distances import (
    EARTH_RADIUS_KM,
    geodesic_km,
    haversine_km,
    latlon_to_xyz,
    xyz_to_latlon,
)
from workbench.geo.metrics import (
    DEFAULT_THRESHOLDS_KM,
    accuracy_at_km,
    error_summary,
    geoguessr_score,
    mean_geoguessr_score,
)
from workbench.geo.partition import Partition, build_partition, oracle_table
from workbench.geo.s2 import (
    cell_center_latlon,
    cell_children,
    cell_id_to_token,
    cell_level,
    cell_parent,
    cell_polygons,
    cell_range,
    s2_cell_ids,
    token_to_cell_id,
)
from workbench.geo.validate import validate_latlon

__all__ = [
    "EARTH_RADIUS_KM", "geodesic_km", "haversine_km", "latlon_to_xyz", "xyz_to_latlon",
    "DEFAULT_THRESHOLDS_KM", "accuracy_at_km", "error_summary", "geoguessr_score",
    "mean_geoguessr_score", "Partition", "build_partition", "oracle_table",
    "cell_center_latlon", "cell_children", "cell_id_to_token", "cell_level", "cell_parent",
    "cell_polygons", "cell_range", "s2_cell_ids", "token_to_cell_id", "validate_latlon",
]
