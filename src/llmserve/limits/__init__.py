"""Admission limits: rate limits (RPM, TPM, parallel), spend budgets, and the admission queue.

Rate limits and budgets hold exactly per process, or across replicas through Redis; see
``ratelimit`` and ``budget``.
"""
