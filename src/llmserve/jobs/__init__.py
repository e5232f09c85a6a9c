"""Async jobs, batches, the job queue and its workers."""
