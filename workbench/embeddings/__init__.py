"""Embedding spaces of any run or bundle: one artifact format (``sets``), 2-D / 3-D
projections by PCA, UMAP or t-SNE (``project``) computed by background jobs whose results are
cached on disk (``jobs``), and their quality numbers.

| module | what |
| --- | --- |
| ``sets`` | ``<name>.npy`` float32 [N, D] + ``<name>.parquet`` (one row per point); list the sets of every source |
| ``project`` | ``project(X, method, dims, metric, seed)`` and ``quality`` (trustworthiness, k-NN preservation) |
| ``jobs`` | ``python -m workbench embed``: the cache key, the job's status / progress / stop, the cached result |
"""
