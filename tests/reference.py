"""The plain reference implementation of DESIGN.md's "state of user u at time ts".

Deliberately naive (sort everything, fold): the fast Python log and the SQL as-of query are both
held to it by property tests. Do not optimise this file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from personas_warehouse.model import IdentifyEvent, Space, UserState


def dedupe(events: Iterable[IdentifyEvent]) -> list[IdentifyEvent]:
    """One event per message id: the copy received earliest (then earliest timestamp, then
    smallest user id) over the whole log."""
    best: dict[str, IdentifyEvent] = {}
    for event in events:
        rank = (event.received_at, event.timestamp, event.user_id)
        current = best.get(event.message_id)
        if current is None or rank < (current.received_at, current.timestamp, current.user_id):
            best[event.message_id] = event
    return list(best.values())


def counted(
    events: Iterable[IdentifyEvent], ts: dt.datetime | None, known_at: dt.datetime | None
) -> list[IdentifyEvent]:
    """The deduplicated events counted at ``ts`` (``None``: no bound), known by ``known_at``,
    in (timestamp, received_at, message_id) order."""
    kept = [
        e
        for e in dedupe(events)
        if (ts is None or e.timestamp <= ts) and (known_at is None or e.received_at <= known_at)
    ]
    return sorted(kept, key=lambda e: (e.timestamp, e.received_at, e.message_id))


def fold(space: Space, user_id: str, events: Iterable[IdentifyEvent]) -> UserState:
    """Apply events in order: for every key, the last event carrying it decides."""
    traits: dict[str, Any] = dict.fromkeys(space.trait_keys)
    audiences: dict[str, bool | None] = dict.fromkeys(space.audience_keys)
    for event in events:
        for key, value in event.values.items():
            if key in traits:
                traits[key] = value
            elif key in audiences:
                audiences[key] = value
    return UserState(user_id, traits, audiences)


def reference_state(
    space: Space,
    events: Iterable[IdentifyEvent],
    user_id: str,
    ts: dt.datetime | None,
    known_at: dt.datetime | None = None,
) -> UserState:
    """The state of ``user_id`` at ``ts`` (inclusive; ``None`` = every event)."""
    mine = [e for e in counted(events, ts, known_at) if e.user_id == user_id]
    return fold(space, user_id, mine)


def reference_snapshot(
    space: Space,
    events: Iterable[IdentifyEvent],
    ts: dt.datetime | None,
    known_at: dt.datetime | None = None,
) -> dict[str, UserState]:
    """Every user with at least one counted event, with their state."""
    events = list(events)
    users = sorted({e.user_id for e in counted(events, ts, known_at)})
    return {u: reference_state(space, events, u, ts, known_at) for u in users}


def as_columns(space: Space, events: Iterable[IdentifyEvent]) -> dict[str, Any]:
    """The events as a warehouse's identifies holds them, as ``IdentifiesLog.from_columns``
    takes them: one column per key (``None`` where the event does not carry the key, or clears
    it), and the keys each event clears."""
    events = list(events)
    return {
        "message_id": [e.message_id for e in events],
        "user_id": [e.user_id for e in events],
        "timestamp": [e.timestamp for e in events],
        "received_at": [e.received_at for e in events],
        "values": {key: [e.values.get(key) for e in events] for key in space.keys},
        "cleared": [[k for k, v in e.values.items() if v is None] or None for e in events],
    }
