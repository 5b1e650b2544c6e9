"""The projection line's models on the Retrieval page (``workbench.contrastive.serving``)."""
from workbench.lines.projection.bundle import list_sources, load_projection as load  # noqa: F401
