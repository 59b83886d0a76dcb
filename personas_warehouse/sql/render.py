"""The one place SQL trees become text: copy, quote every identifier, render for the dialect.

Anything sqlglot cannot express in the target dialect is an error, never a silent downgrade.

>>> from sqlglot import exp
>>> render(exp.select(exp.column("order")).from_(exp.table_("users", db="s")), "postgres")
'SELECT "order" FROM "s"."users"'
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from personas_warehouse.errors import PersonasWarehouseError
from personas_warehouse.warehouses import Capabilities, capabilities

__all__ = ["UnsupportedSQLError", "render", "render_all"]


class UnsupportedSQLError(PersonasWarehouseError):
    """sqlglot cannot render a statement faithfully in the target dialect."""


def render(expression: exp.Expression, dialect: str | Capabilities) -> str:
    """Render one statement for ``dialect`` with every identifier quoted."""
    caps = capabilities(dialect)
    try:
        return expression.sql(
            dialect=caps.sqlglot_dialect,
            identify=True,
            unsupported_level=ErrorLevel.RAISE,
            copy=True,
        )
    except UnsupportedError as err:
        raise UnsupportedSQLError(
            f"sqlglot cannot write this statement for {caps.sqlglot_dialect}: {err}"
        ) from err


def render_all(expressions: list[exp.Expression], dialect: str | Capabilities) -> list[str]:
    """Render each statement (see :func:`render`)."""
    return [render(expression, dialect) for expression in expressions]
