"""Reference data: what the ids on deals and contacts name (pipelines, stages, users,
custom-field definitions, loss reasons), polled by the worker (job.py)."""
