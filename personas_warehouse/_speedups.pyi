"""Types of the optional C speedups (personas_warehouse/_speedups.c)."""

from typing import Any

def flatten(
    events: list[Any],
    event_type: type,
    descriptors: tuple[Any, ...],
    codes: dict[str, int],
    checks: bytes,
    /,
) -> tuple[list[str], list[str], bytes, bytes | None, bytes, list[Any], bytes] | None: ...
def layout(
    mids: list[str],
    uids: list[str],
    ts: Any,
    recv: Any,
    codes: Any,
    values: list[Any],
    bound: Any,
    trait_names: tuple[str, ...],
    audience_pairs: tuple[tuple[str, bool], ...],
    index_size: int,
    code_size: int,
    /,
) -> (
    tuple[
        bytearray,
        bytes,
        list[str],
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        bytes,
        list[Any],
        bytes,
        list[str],
        list[tuple[str, bool]],
    ]
    | None
): ...
def use_state(state_type: type, descriptors: tuple[Any, ...], /) -> None: ...
def state(
    user_id: str,
    start: int,
    end: int,
    ends: Any,
    t_key: list[str],
    t_value: list[Any],
    a_pair: list[tuple[str, bool]],
    trait_template: dict[str, Any],
    audience_template: dict[str, Any],
    known: int | None = ...,
    e_recv: Any = ...,
    /,
) -> Any: ...
def snapshot(
    moment: int,
    u_ids: list[str],
    u_range: Any,
    e_ts: Any,
    ends: Any,
    t_key: list[str],
    t_value: list[Any],
    a_pair: list[tuple[str, bool]],
    trait_template: dict[str, Any],
    audience_template: dict[str, Any],
    known: int | None = ...,
    e_recv: Any = ...,
    /,
) -> dict[str, Any]: ...
def utc_micros(moments: Any, /) -> bytes | None: ...
def present(column: Any, /) -> tuple[bytes, list[Any]] | None: ...
def in_event_order(
    count: int, rows: list[Any], codes: list[int], values: list[list[Any]], /
) -> tuple[bytes, list[Any], bytes]: ...
def check_pairs(codes: Any, values: list[Any], checks: bytes, /) -> bool: ...
def hash_table(
    blob: bytearray, m_off: Any, size: int, slot_bits: int, fingerprint_mask: int, /
) -> bytes: ...
def cleared_rows(
    cleared: Any, codes: dict[str, int], code_count: int, /
) -> dict[int, bytes] | None: ...
