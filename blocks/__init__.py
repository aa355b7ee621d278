"""Prefect Block types for server-side configuration (roster, limits, budgets, storage).

Not built yet: see the issue "Nightly batches across many repositories". Today the roster is a
YAML file (`quorum/rosters/`) and the store a URL.
"""
