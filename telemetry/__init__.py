"""How every process of the project reports itself: structured log lines
(`logs`) and OpenTelemetry traces (`tracing`). Plain Python with no Django,
so MMS's processes and the TradeX simulator configure them the same way."""
