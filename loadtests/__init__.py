"""Load tests and the benchmark harness: Locust scenarios, ``python -m loadtests.bench``,
the naive reference server and the engine's offline ceiling.

Nothing here is imported by the server.
"""
