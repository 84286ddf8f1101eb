"""The demo's pools, participants and memberships, as data (no Django): what
`manage.py seed_demo` creates for `make run`, and what the lab's studies run
(lab/, bench/fairness.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

D = Decimal
_COMMON = {
    "enabled": True,
    "tau": D("1"),
    "vol_lookback_seconds": 300,
    "num_levels": 3,
    "level_spacing_bps": D("3"),
    "check_staleness": True,
    "staleness_threshold_ms": 3000,
    "quote_interval_ms": 500,
    "price_threshold_bps": D("2"),
}
POOLS: dict[str, dict[str, Any]] = {
    "BTCUSDT-PERP": {
        **_COMMON,
        # A-S units are price units (SPEC Part B.1). σ comes from trades, so it holds
        # the bid-ask bounce too (≈ 1,000 USDT/√h here): γσ²τ ≈ 2 bps, and the
        # spread sits near its floor, at the simulator's other makers (±1 bp).
        "gamma": D("0.00001"),
        "kappa": D("2"),
        "min_spread_bps": D("2"),
        "max_spread_bps": D("40"),
        "order_size_usdt": D("3000"),
        "max_pool_position_usdt": D("250000"),
        "max_pool_loss_usdt": D("25000"),
    },
    "ETHUSDT-PERP": {
        **_COMMON,
        "gamma": D("0.0001"),
        "kappa": D("20"),
        "min_spread_bps": D("2.5"),
        "max_spread_bps": D("50"),
        "order_size_usdt": D("2000"),
        "max_pool_position_usdt": D("150000"),
        "max_pool_loss_usdt": D("15000"),
    },
    "PEPEUSDT-PERP": {
        **_COMMON,
        # κ scales with 1/price (ln(1 + γ/κ)/γ ≈ 1/κ is a price: one tick here). γ
        # does not: q is in base units, so the skew q·γ·σ²·τ over the price is
        # (q·price)·γ·(σ/price)²·τ, the same for the same notional and relative σ.
        # BTC's γ gives PEPE a skew of about 1 bp per 10,000 USDT of inventory
        # (100,000 made r 0.38 against a price of 0.00001 at 1,000 USDT).
        "gamma": D("0.00001"),
        "kappa": D("1000000000"),
        "min_spread_bps": D("3"),
        "max_spread_bps": D("120"),
        "order_size_usdt": D("500"),
        "max_pool_position_usdt": D("40000"),
        "max_pool_loss_usdt": D("4000"),
    },
}
PARTICIPANTS: tuple[dict[str, Any], ...] = (
    {
        "name": "Alpha Capital",
        "user_id": "user-alpha",
        "account_id": "acct-alpha",
        "tier": "TIER_1",
        "margin_usdt": D("500000"),
        "revenue_model": "KEEP_ALL",
    },
    {
        "name": "Beta Trading",
        "user_id": "user-beta",
        "account_id": "acct-beta",
        "tier": "TIER_2",
        "margin_usdt": D("200000"),
        "revenue_model": "PERCENTAGE_SPLIT",
        "revenue_share_pct": D("20"),
    },
    {
        "name": "Gamma Quant",
        "user_id": "user-gamma",
        "account_id": "acct-gamma",
        "tier": "TIER_2",
        "margin_usdt": D("150000"),
        "revenue_model": "PERCENTAGE_SPLIT",
        "revenue_share_pct": D("15"),
    },
    {
        "name": "Delta Retail",
        "user_id": "user-delta",
        "account_id": "acct-delta",
        "tier": "TIER_3",
        "margin_usdt": D("25000"),
        "revenue_model": "KEEP_ALL",
    },
)
# symbol → (account_id, weight, max_position_usdt)
MEMBERS: dict[str, tuple[tuple[str, Decimal, Decimal], ...]] = {
    "BTCUSDT-PERP": (
        ("acct-alpha", D("4"), D("120000")),
        ("acct-beta", D("2"), D("60000")),
        ("acct-gamma", D("1"), D("40000")),
    ),
    "ETHUSDT-PERP": (
        ("acct-alpha", D("3"), D("60000")),
        ("acct-beta", D("2"), D("40000")),
        ("acct-gamma", D("2"), D("40000")),
        ("acct-delta", D("1"), D("10000")),
    ),
    "PEPEUSDT-PERP": (
        ("acct-beta", D("2"), D("20000")),
        ("acct-delta", D("1"), D("10000")),
    ),
}
