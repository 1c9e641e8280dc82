"""Administration (OAIS functional entity): the audit schedule, and the jobs and workers
of a shared catalog that run every other entity's operations."""
