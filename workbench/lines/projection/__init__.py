"""The projection-heads line: align two frozen embedding spaces (image vs text) with small
trained heads, compared across seven head designs and five contrastive losses.

Everything of this line is in this folder (see README.md); it imports only the core (the
losses, retrieval metrics, pre-encoded pairs and embedding artifacts of
``workbench.contrastive``).

| module | what |
| --- | --- |
| ``config`` | the run config: data (a pre-encoded folder and its splits), model (the head and its options), loss, eval |
| ``models`` | ``HEADS``: mlp, attention, cross_modal, siglip, clip, align (BatchNorm), blip (momentum); ``ProjectionModel`` (two heads, temperature, bias, momentum copies, the loss) |
| ``data`` | pairs in memory as tensors, batches gathered by index |
| ``evaluate`` | R@K of a model on a split, the untrained / random-projection / ridge baselines, artifacts |
| ``bundle`` | load a bundle or run as a ready model with its test embeddings |
| ``experiment`` | the registered ``projection`` kind: a facade over the modules above |
| ``cli`` / ``bench`` / ``ui`` | ``python -m workbench projection ...``, ``bench projection``, the Retrieval page |
"""
TITLE = "Projection heads"
PAGES = ("6_Retrieval.py",)
