"""`python -m simulator`: the TradeX simulator (see simulator/tradex.py)."""

from simulator.tradex import main

main()
