"""The geolocator line: photo -> S2-cell classifier (PlaNet-style) on a timm backbone.

| module | what |
| --- | --- |
| ``config`` | the run config: data, labels, model and eval sections |
| ``data`` | image folder + CSV, transforms, unreadable-image handling, multi-band inputs |
| ``labels`` | flat / multilabel / per-level labels over the partition, haversine smoothing |
| ``models`` | heads registry, ``GeoClassifier`` (backbones in ``workbench.encoders.image``) |
| ``evaluate`` | distance / GeoGuessr / cell metrics, predictions frame, baselines |
| ``lr_finder`` | LR range test |
| ``predict`` | load a checkpoint, geolocate a photo |
| ``export`` | checkpoint bundle, ONNX with onnxruntime parity |
| ``gradio_demo`` | Gradio app |
| ``errors_analysis`` | worst errors, per-cell accuracy, confused pairs |
| ``sources`` | models and predictions the pages can show |

The experiment kind itself is ``workbench.experiments.geolocator``.
"""
