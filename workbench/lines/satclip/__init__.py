"""The SatCLIP line: multi-band image tiles and their locations aligned in one space, and
location-embedding probes that judge any location encoder by what it predicts about a place.

Everything of this line is in this folder (see README.md); it imports only the core.

| module | what |
| --- | --- |
| ``data`` | the S2-100K layout (GeoTIFF patches + index.csv) and the demo geo-patches bands; batch augmentations |
| ``probe_targets`` | facts computable offline at any point on Earth (land / sea, continent, country, distance to the coast, relief, greenness, population) |
| ``probes`` | frozen location encoder -> linear / MLP probes on a held-out-by-S2-cell split, several seeds |
| ``cli`` | ``python -m workbench satclip ...`` |
"""
TITLE = "SatCLIP"
