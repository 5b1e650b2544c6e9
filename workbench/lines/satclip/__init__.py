"""The SatCLIP line: multi-band image tiles and their locations aligned in one space, and
location-embedding probes that judge any location encoder by what it predicts about a place.

Everything of this line is in this folder (see README.md); it imports only the core.

| module | what |
| --- | --- |
| ``data`` | the S2-100K layout (GeoTIFF patches + index.csv) and the demo geo-patches bands; batch augmentations |
| ``probe_targets`` | facts computable offline at any point on Earth (land / sea, continent, country, distance to the coast, relief, greenness, population) |
| ``probes`` | frozen location encoder -> linear / MLP probes on a held-out-by-S2-cell split, several seeds |
| ``config`` | the run config: data (source, augmentations), model (backbone, location encoder, heads), probe |
| ``models`` | the note's ``Project`` heads on an image backbone and a location encoder; the core ``clip`` loss |
| ``experiment`` | the registered ``satclip`` kind: cached frozen features or fine-tuning, tile <-> location R@K, artifacts + probe table |
| ``bundle`` | load a bundle or run, its location encoder as a function, export a run |
| ``explore`` / ``ui`` | the Location embeddings page: nearest tiles and places of a point, PCA world maps, probe tables |
| ``cli`` / ``bench`` | ``python -m workbench satclip probe|export|export-demo``, ``bench satclip`` |
"""
TITLE = "SatCLIP"
PAGES = ("7_Location_Embeddings.py",)
