"""The quoting core: plain Python, no Django, no I/O.

Everything here is deterministic given its inputs and a clock, so a run can be
replayed from recorded events. Adapters (quoting_worker/adapters) connect it
to Kafka, the Order Service, the ORM and Redis; the runner's per-symbol actor
(quoting_worker/runner/actor.py) is the one owner of each PoolEngine.

Its rooms:
- engine: PoolEngine, one symbol's pool as a state machine (events in, actions
  out): dispatch, market data, the gate, commands, risk trips, when to quote;
- orders: what the engine knows of its orders at the venue and the venue's
  answers about them (owner map, own size per price, cancels, unknown
  outcomes, queries, reconciliation);
- membership: the pool's members, their weights and limits, q;
- quoting: from a ladder to per-member targets and the cancels and placements
  that reach them; allocation: the pro-rata split; avellaneda: the A-S ladder;
- book, volatility, member (one member's orders, position and PnL), risk
  (guards and the pre-trade check), ids, types, ports;
- status: the live status snapshot; restart: the engine rebuilt from storage.
"""
