"""The desk's lab: the live PoolEngine run against the simulator's market and
matching engine in one process, on simulated time (no broker, no HTTP), for
studies and checks that need many fills quickly and deterministically."""
