"""The CLIP line's models on the Retrieval page (``workbench.contrastive.serving``)."""
from workbench.lines.clip.bundle import list_sources, load_clip as load  # noqa: F401
