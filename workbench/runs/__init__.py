"""Run store and background jobs."""
from workbench.runs.jobs import JobManager
from workbench.runs.store import Run, RunStore, latest_per_step

__all__ = ["JobManager", "Run", "RunStore", "latest_per_step"]
