"""The quoting core: plain Python, no Django, no I/O.

Everything here is deterministic given its inputs and a clock, so a run can be
replayed from recorded events. Adapters (quoting_worker/adapters) connect it
to Kafka, the Order Service, the ORM and Redis.
"""
