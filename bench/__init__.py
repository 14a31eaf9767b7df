"""Search latency and constant-query benchmark on a seeded PostgreSQL database.

Run with `make bench` or `python -m bench [--large N]`; see bench/__main__.py.
"""
