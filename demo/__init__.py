"""The demo: what `make run` seeds (three pools, four participants) and a
month of simulated trading for the revenue side (`simulate_month`). It may use
every other room (the quoting core's ledger, the store, the simulator's market
profiles) because it stands in for real trading; no other app imports it."""
