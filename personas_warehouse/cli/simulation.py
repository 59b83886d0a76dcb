"""The demo's simulated day: a small shop's users, their orders, and what a pipeline computes.

Deterministic: the same seed gives the same runs, byte for byte.

>>> runs = simulate(seed=7, users=5, hours=3)
>>> [at.hour for at, _ in runs]
[0, 1, 2]
>>> sorted(runs[0][1].audiences)
['high_value_users', 'newsletter_subscribers', 'recent_buyers']
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any, Final

import attrs

from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType
from personas_warehouse.sync import ComputedResults

__all__ = ["DEMO_SCHEMA", "DEMO_START", "demo_space", "simulate"]

DEMO_SCHEMA: Final = "personas_demo"
DEMO_START: Final = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
"""The simulated day starts here; one sync runs every hour after it."""
HIGH_VALUE: Final = 150.0
"""Lifetime value from which a user is in ``high_value_users``."""
RECENT_HOURS: Final = 3
"""A user who ordered within this many hours is in ``recent_buyers``."""


def demo_space() -> Space:
    """The demo's space: four traits, three audiences."""
    return Space(
        traits=[
            ComputedTrait("lifetime_value", TraitType.NUMBER),
            ComputedTrait("orders_count", TraitType.INTEGER),
            ComputedTrait("plan", TraitType.STRING),
            ComputedTrait("last_order_at", TraitType.TIMESTAMP),
        ],
        audiences=[
            Audience("high_value_users"),
            Audience("recent_buyers"),
            Audience("newsletter_subscribers"),
        ],
        schema=DEMO_SCHEMA,
    )


@attrs.define
class _Customer:
    user_id: str
    joins_at: int
    lifetime_value: float = 0.0
    orders_count: int = 0
    plan: str | None = "free"
    last_order_at: dt.datetime | None = None
    subscribed: bool = False


def simulate(
    seed: int = 7, users: int = 40, hours: int = 24
) -> list[tuple[dt.datetime, ComputedResults]]:
    """One ``(at, results)`` per hourly run: trait values of every user who has joined, and the
    full member set of each audience. Users join over the day, order, upgrade, cancel (which
    clears their plan: an explicit ``None``), and subscribe to and leave the newsletter."""
    rng = random.Random(seed)
    width = len(str(users))
    customers = [
        _Customer(f"u{n:0{width}d}", 0 if rng.random() < 0.6 else rng.randrange(1, max(hours, 2)))
        for n in range(1, users + 1)
    ]
    for customer in customers:
        customer.subscribed = rng.random() < 0.3
    runs: list[tuple[dt.datetime, ComputedResults]] = []
    for hour in range(hours):
        at = DEMO_START + dt.timedelta(hours=hour)
        traits: dict[str, dict[str, Any]] = {}
        members: dict[str, set[str]] = {
            "high_value_users": set(),
            "recent_buyers": set(),
            "newsletter_subscribers": set(),
        }
        for customer in customers:
            if customer.joins_at > hour:
                continue
            if rng.random() < 0.25:
                customer.orders_count += 1
                customer.lifetime_value = round(
                    customer.lifetime_value + rng.choice([9.99, 24.5, 42.0, 79.9]), 2
                )
                customer.last_order_at = at - dt.timedelta(minutes=rng.randrange(1, 60))
            roll = rng.random()
            if customer.plan == "free" and roll < 0.04:
                customer.plan = "pro"
            elif customer.plan == "pro" and roll < 0.08:
                customer.plan = None  # cancelled: the trait is cleared
            elif customer.plan is None and roll < 0.05:
                customer.plan = "free"
            if rng.random() < 0.08:
                customer.subscribed = not customer.subscribed
            traits[customer.user_id] = {
                "lifetime_value": customer.lifetime_value,
                "orders_count": customer.orders_count,
                "plan": customer.plan,
                "last_order_at": customer.last_order_at,
            }
            if customer.lifetime_value >= HIGH_VALUE:
                members["high_value_users"].add(customer.user_id)
            if customer.last_order_at is not None and at - customer.last_order_at < dt.timedelta(
                hours=RECENT_HOURS
            ):
                members["recent_buyers"].add(customer.user_id)
            if customer.subscribed:
                members["newsletter_subscribers"].add(customer.user_id)
        runs.append((at, ComputedResults(traits=traits, audiences=members)))
    return runs
