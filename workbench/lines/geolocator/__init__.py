"""The geolocator line: photo -> S2-cell classifier (PlaNet-style) on a timm backbone.

Everything of this line is in this folder (see README.md); it imports only the core.

| module | what |
| --- | --- |
| ``config`` | the run config: data, labels, model and eval sections |
| ``data`` | image folder + CSV, transforms, unreadable-image handling, multi-band inputs |
| ``labels`` | flat / multilabel / per-level labels over the partition, haversine smoothing |
| ``models`` | heads registry, ``GeoClassifier`` (backbones in ``workbench.encoders.image``) |
| ``evaluate`` | distance / GeoGuessr / cell metrics, predictions frame, baselines |
| ``lr_finder`` | LR range test |
| ``predict`` | load a checkpoint, geolocate a photo |
| ``confidence`` | top-1 / top-5 mass, normalised entropy, low-confidence verdicts |
| ``geolocate_view`` / ``samples`` | what the Geolocate page computes: truth, scores, map layers; sample tiles |
| ``errors_analysis`` | worst errors, per-cell accuracy, confused pairs (the Errors page) |
| ``export`` | model bundle (core format), ONNX with onnxruntime parity |
| ``figures`` / ``gradio_demo`` | plotly / folium figures; the Gradio app |
| ``experiment`` | the registered ``geolocator`` kind: a facade over the modules above |
| ``cli`` / ``bench`` / ``ui`` | ``python -m workbench predict / export / ...``, ``bench geolocator``, page sections |
"""
TITLE = "Geolocator"
PAGES = ("4_Geolocate.py", "5_Errors.py")
