"""The local stack's servers as the project starts them: `make run`, the test
fixtures and the benchmarks use these, so a server is started one way only.

Development tooling: nothing under mms/, the apps or quoting_worker/ imports it.
"""
