"""TradeX simulator: stand-ins for the services MMS talks to but does not own
(SPEC Part B.7). Production points the same URLs at the real services."""
