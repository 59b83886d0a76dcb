# ruff: noqa: E501  (golden SQL: one statement per line, exactly as written)
"""Golden SQL for the warehouses that cannot run here, compared as parsed trees.

Snowflake, BigQuery, Redshift, Databricks, Trino and T-SQL (and the generic profile, shown with
Oracle) are verified this way: the expected statements are written out below, compared through
one helper in the style of sqlglot's ``validate_all``, and every statement the library writes
for any dialect is parsed back by sqlglot in that dialect and written again unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from personas_warehouse.model import Audience, ComputedTrait, Space, TraitType
from personas_warehouse.sql.ddl import (
    create_statements,
    drop_column_statements,
    migrate_statements,
)
from personas_warehouse.warehouses import WAREHOUSES

T = TraitType


BEFORE = Space(
    traits=[
        ComputedTrait("Order Total", T.NUMBER),
        ComputedTrait("age", T.INTEGER),
        ComputedTrait("last seen", T.TIMESTAMP),
        ComputedTrait("prefs", T.JSON),
        ComputedTrait("vip since", T.BOOLEAN),
    ],
    audiences=[Audience("vip")],
    sync_identifies=False,
)
AFTER = Space(
    traits=[
        ComputedTrait("Order Total", T.STRING),
        ComputedTrait("age", T.NUMBER),
        ComputedTrait("last seen", T.STRING),
        ComputedTrait("prefs", T.JSON),
        ComputedTrait("vip since", T.STRING),
        ComputedTrait("select", T.INTEGER),
    ],
    audiences=[Audience("vip"), Audience("2 orders")],
    sync_identifies=False,
)

CREATE = {
    "snowflake": [
        'CREATE SCHEMA IF NOT EXISTS "personas_default"',
        'CREATE TABLE IF NOT EXISTS "personas_default"."users" ("id" VARCHAR NOT NULL, "order_total" DOUBLE, "age" DECIMAL(19, 0), "last_seen" TIMESTAMPTZ, "prefs" VARIANT, "vip_since" BOOLEAN, "vip" BOOLEAN, "timestamp" TIMESTAMPTZ, "received_at" TIMESTAMPTZ, "uuid_ts" TIMESTAMPTZ, PRIMARY KEY ("id"))',
        'CREATE TABLE IF NOT EXISTS "personas_default"."sync_runs" ("run_id" VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL, "started_at" TIMESTAMPTZ NOT NULL, "finished_at" TIMESTAMPTZ, "status" VARCHAR NOT NULL, "rows_written" DECIMAL(19, 0), "counts" VARCHAR, PRIMARY KEY ("run_id"))',
    ],
    "bigquery": [
        "CREATE SCHEMA IF NOT EXISTS `personas_default`",
        "CREATE TABLE IF NOT EXISTS `personas_default`.`users` (`id` STRING NOT NULL, `order_total` FLOAT64, `age` INT64, `last_seen` TIMESTAMP, `prefs` JSON, `vip_since` BOOL, `vip` BOOL, `timestamp` TIMESTAMP, `received_at` TIMESTAMP, `uuid_ts` TIMESTAMP, PRIMARY KEY (`id`) NOT ENFORCED)",
        "CREATE TABLE IF NOT EXISTS `personas_default`.`sync_runs` (`run_id` STRING NOT NULL, `at` TIMESTAMP NOT NULL, `started_at` TIMESTAMP NOT NULL, `finished_at` TIMESTAMP, `status` STRING NOT NULL, `rows_written` INT64, `counts` STRING, PRIMARY KEY (`run_id`) NOT ENFORCED)",
    ],
    "redshift": [
        'CREATE SCHEMA IF NOT EXISTS "personas_default"',
        'CREATE TABLE IF NOT EXISTS "personas_default"."users" ("id" VARCHAR(1024) NOT NULL, "order_total" DOUBLE PRECISION, "age" BIGINT, "last_seen" TIMESTAMP WITH TIME ZONE, "prefs" SUPER, "vip_since" BOOLEAN, "vip" BOOLEAN, "timestamp" TIMESTAMP WITH TIME ZONE, "received_at" TIMESTAMP WITH TIME ZONE, "uuid_ts" TIMESTAMP WITH TIME ZONE, PRIMARY KEY ("id"))',
        'CREATE TABLE IF NOT EXISTS "personas_default"."sync_runs" ("run_id" VARCHAR(1024) NOT NULL, "at" TIMESTAMP WITH TIME ZONE NOT NULL, "started_at" TIMESTAMP WITH TIME ZONE NOT NULL, "finished_at" TIMESTAMP WITH TIME ZONE, "status" VARCHAR(1024) NOT NULL, "rows_written" BIGINT, "counts" VARCHAR(65535), PRIMARY KEY ("run_id"))',
    ],
    "databricks": [
        "CREATE SCHEMA IF NOT EXISTS `personas_default`",
        "CREATE TABLE IF NOT EXISTS `personas_default`.`users` (`id` STRING NOT NULL, `order_total` DOUBLE, `age` BIGINT, `last_seen` TIMESTAMP, `prefs` STRING, `vip_since` BOOLEAN, `vip` BOOLEAN, `timestamp` TIMESTAMP, `received_at` TIMESTAMP, `uuid_ts` TIMESTAMP)",
        "CREATE TABLE IF NOT EXISTS `personas_default`.`sync_runs` (`run_id` STRING NOT NULL, `at` TIMESTAMP NOT NULL, `started_at` TIMESTAMP NOT NULL, `finished_at` TIMESTAMP, `status` STRING NOT NULL, `rows_written` BIGINT, `counts` STRING)",
    ],
    "trino": [
        'CREATE SCHEMA IF NOT EXISTS "personas_default"',
        'CREATE TABLE IF NOT EXISTS "personas_default"."users" ("id" VARCHAR NOT NULL, "order_total" DOUBLE, "age" BIGINT, "last_seen" TIMESTAMP(6) WITH TIME ZONE, "prefs" VARCHAR, "vip_since" BOOLEAN, "vip" BOOLEAN, "timestamp" TIMESTAMP(6) WITH TIME ZONE, "received_at" TIMESTAMP(6) WITH TIME ZONE, "uuid_ts" TIMESTAMP(6) WITH TIME ZONE)',
        'CREATE TABLE IF NOT EXISTS "personas_default"."sync_runs" ("run_id" VARCHAR NOT NULL, "at" TIMESTAMP(6) WITH TIME ZONE NOT NULL, "started_at" TIMESTAMP(6) WITH TIME ZONE NOT NULL, "finished_at" TIMESTAMP(6) WITH TIME ZONE, "status" VARCHAR NOT NULL, "rows_written" BIGINT, "counts" VARCHAR)',
    ],
    "tsql": [
        "IF NOT EXISTS (SELECT * FROM INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME = 'personas_default') EXEC('CREATE SCHEMA [personas_default]')",
        "IF NOT EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'users' AND TABLE_SCHEMA = 'personas_default') EXEC('CREATE TABLE [personas_default].[users] ([id] NVARCHAR(450) NOT NULL, [order_total] FLOAT, [age] BIGINT, [last_seen] DATETIMEOFFSET(6), [prefs] NVARCHAR(MAX), [vip_since] BIT, [vip] BIT, [timestamp] DATETIMEOFFSET(6), [received_at] DATETIMEOFFSET(6), [uuid_ts] DATETIMEOFFSET(6))')",
        "IF NOT EXISTS (SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'sync_runs' AND TABLE_SCHEMA = 'personas_default') EXEC('CREATE TABLE [personas_default].[sync_runs] ([run_id] NVARCHAR(450) NOT NULL, [at] DATETIMEOFFSET(6) NOT NULL, [started_at] DATETIMEOFFSET(6) NOT NULL, [finished_at] DATETIMEOFFSET(6), [status] NVARCHAR(450) NOT NULL, [rows_written] BIGINT, [counts] NVARCHAR(MAX))')",
    ],
    "oracle": [
        'CREATE SCHEMA IF NOT EXISTS "personas_default"',
        'CREATE TABLE IF NOT EXISTS "personas_default"."users" ("id" VARCHAR2(1024) NOT NULL, "order_total" DOUBLE PRECISION, "age" INT, "last_seen" TIMESTAMP WITH TIME ZONE, "prefs" CLOB, "vip_since" BOOLEAN, "vip" BOOLEAN, "timestamp" TIMESTAMP WITH TIME ZONE, "received_at" TIMESTAMP WITH TIME ZONE, "uuid_ts" TIMESTAMP WITH TIME ZONE, PRIMARY KEY ("id"))',
        'CREATE TABLE IF NOT EXISTS "personas_default"."sync_runs" ("run_id" VARCHAR2(1024) NOT NULL, "at" TIMESTAMP WITH TIME ZONE NOT NULL, "started_at" TIMESTAMP WITH TIME ZONE NOT NULL, "finished_at" TIMESTAMP WITH TIME ZONE, "status" VARCHAR2(1024) NOT NULL, "rows_written" INT, "counts" CLOB, PRIMARY KEY ("run_id"))',
    ],
}
MIGRATE = {
    "snowflake": [
        'ALTER TABLE "personas_default"."users" ADD IF NOT EXISTS "select" DECIMAL(19, 0)',
        'ALTER TABLE "personas_default"."users" ADD IF NOT EXISTS "2_orders" BOOLEAN',
        'ALTER TABLE "personas_default"."users" ADD IF NOT EXISTS "pw_tmp_aa6696fe8b" VARCHAR',
        'UPDATE "personas_default"."users" SET "pw_tmp_aa6696fe8b" = CAST("order_total" AS VARCHAR) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "order_total"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_aa6696fe8b" TO "order_total"',
        'ALTER TABLE "personas_default"."users" ADD IF NOT EXISTS "pw_tmp_013f54400c" DOUBLE',
        'UPDATE "personas_default"."users" SET "pw_tmp_013f54400c" = CAST("age" AS DOUBLE) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "age"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_013f54400c" TO "age"',
        'ALTER TABLE "personas_default"."users" ADD IF NOT EXISTS "pw_tmp_fa4043818a" VARCHAR',
        'UPDATE "personas_default"."users" SET "pw_tmp_fa4043818a" = TO_CHAR(CONVERT_TIMEZONE(\'UTC\', "last_seen"), \'yyyy-mm-DD hh24:mi:ss.ff6+00:00\') WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "last_seen"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_fa4043818a" TO "last_seen"',
        'ALTER TABLE "personas_default"."users" ADD IF NOT EXISTS "pw_tmp_3a1ecbe411" VARCHAR',
        'UPDATE "personas_default"."users" SET "pw_tmp_3a1ecbe411" = CASE WHEN "vip_since" THEN \'true\' WHEN NOT "vip_since" THEN \'false\' END WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "vip_since"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_3a1ecbe411" TO "vip_since"',
    ],
    "bigquery": [
        "ALTER TABLE `personas_default`.`users` ADD COLUMN IF NOT EXISTS `select` INT64, ADD COLUMN IF NOT EXISTS `_2_orders` BOOL",
        "ALTER TABLE `personas_default`.`users` ADD COLUMN IF NOT EXISTS `pw_tmp_aa6696fe8b` STRING",
        "UPDATE `personas_default`.`users` SET `pw_tmp_aa6696fe8b` = CAST(`order_total` AS STRING) WHERE TRUE",
        "ALTER TABLE `personas_default`.`users` DROP COLUMN `order_total`",
        "ALTER TABLE `personas_default`.`users` RENAME COLUMN `pw_tmp_aa6696fe8b` TO `order_total`",
        "ALTER TABLE `personas_default`.`users` ALTER COLUMN `age` SET DATA TYPE FLOAT64",
        "ALTER TABLE `personas_default`.`users` ADD COLUMN IF NOT EXISTS `pw_tmp_fa4043818a` STRING",
        "UPDATE `personas_default`.`users` SET `pw_tmp_fa4043818a` = FORMAT_TIMESTAMP('%F %H:%M:%E6S+00:00', `last_seen`, 'UTC') WHERE TRUE",
        "ALTER TABLE `personas_default`.`users` DROP COLUMN `last_seen`",
        "ALTER TABLE `personas_default`.`users` RENAME COLUMN `pw_tmp_fa4043818a` TO `last_seen`",
        "ALTER TABLE `personas_default`.`users` ADD COLUMN IF NOT EXISTS `pw_tmp_3a1ecbe411` STRING",
        "UPDATE `personas_default`.`users` SET `pw_tmp_3a1ecbe411` = CASE WHEN `vip_since` THEN 'true' WHEN NOT `vip_since` THEN 'false' END WHERE TRUE",
        "ALTER TABLE `personas_default`.`users` DROP COLUMN `vip_since`",
        "ALTER TABLE `personas_default`.`users` RENAME COLUMN `pw_tmp_3a1ecbe411` TO `vip_since`",
    ],
    "redshift": [
        'ALTER TABLE "personas_default"."users" ADD COLUMN "select" BIGINT',
        'ALTER TABLE "personas_default"."users" ADD COLUMN "2_orders" BOOLEAN',
        "BEGIN",
        'ALTER TABLE "personas_default"."users" ADD COLUMN "pw_tmp_aa6696fe8b" VARCHAR(65535)',
        'UPDATE "personas_default"."users" SET "pw_tmp_aa6696fe8b" = CAST("order_total" AS VARCHAR(65535)) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "order_total"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_aa6696fe8b" TO "order_total"',
        "COMMIT",
        "BEGIN",
        'ALTER TABLE "personas_default"."users" ADD COLUMN "pw_tmp_013f54400c" DOUBLE PRECISION',
        'UPDATE "personas_default"."users" SET "pw_tmp_013f54400c" = CAST("age" AS DOUBLE PRECISION) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "age"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_013f54400c" TO "age"',
        "COMMIT",
        "BEGIN",
        'ALTER TABLE "personas_default"."users" ADD COLUMN "pw_tmp_fa4043818a" VARCHAR(65535)',
        'UPDATE "personas_default"."users" SET "pw_tmp_fa4043818a" = TO_CHAR("last_seen" AT TIME ZONE \'UTC\', \'YYYY-MM-DD HH24:MI:SS.US+00:00\') WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "last_seen"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_fa4043818a" TO "last_seen"',
        "COMMIT",
        "BEGIN",
        'ALTER TABLE "personas_default"."users" ADD COLUMN "pw_tmp_3a1ecbe411" VARCHAR(65535)',
        'UPDATE "personas_default"."users" SET "pw_tmp_3a1ecbe411" = CASE WHEN "vip_since" THEN \'true\' WHEN NOT "vip_since" THEN \'false\' END WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "vip_since"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_3a1ecbe411" TO "vip_since"',
        "COMMIT",
    ],
    "databricks": [
        "DROP TABLE IF EXISTS `personas_default`.`users__pw_rebuild`",
        "CREATE TABLE IF NOT EXISTS `personas_default`.`users__pw_rebuild` (`id` STRING NOT NULL, `order_total` STRING, `age` DOUBLE, `last_seen` STRING, `prefs` STRING, `vip_since` STRING, `vip` BOOLEAN, `timestamp` TIMESTAMP, `received_at` TIMESTAMP, `uuid_ts` TIMESTAMP)",
        "INSERT INTO `personas_default`.`users__pw_rebuild` (`id`, `order_total`, `age`, `last_seen`, `prefs`, `vip_since`, `vip`, `timestamp`, `received_at`, `uuid_ts`) SELECT `id`, CAST(`order_total` AS STRING), CAST(`age` AS DOUBLE), DATE_FORMAT(`last_seen`, 'yyyy-MM-dd HH:mm:ss.SSSSSS+00:00'), `prefs`, CASE WHEN `vip_since` THEN 'true' WHEN NOT `vip_since` THEN 'false' END, `vip`, `timestamp`, `received_at`, `uuid_ts` FROM `personas_default`.`users`",
        "DROP TABLE `personas_default`.`users`",
        "CREATE TABLE IF NOT EXISTS `personas_default`.`users` (`id` STRING NOT NULL, `order_total` STRING, `age` DOUBLE, `last_seen` STRING, `prefs` STRING, `vip_since` STRING, `vip` BOOLEAN, `timestamp` TIMESTAMP, `received_at` TIMESTAMP, `uuid_ts` TIMESTAMP, `select` BIGINT, `2_orders` BOOLEAN)",
        "INSERT INTO `personas_default`.`users` (`id`, `order_total`, `age`, `last_seen`, `prefs`, `vip_since`, `vip`, `timestamp`, `received_at`, `uuid_ts`) SELECT `id`, `order_total`, `age`, `last_seen`, `prefs`, `vip_since`, `vip`, `timestamp`, `received_at`, `uuid_ts` FROM `personas_default`.`users__pw_rebuild`",
        "DROP TABLE IF EXISTS `personas_default`.`users__pw_rebuild`",
    ],
    "trino": [
        'ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "select" BIGINT',
        'ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "2_orders" BOOLEAN',
        'ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "pw_tmp_aa6696fe8b" VARCHAR',
        'UPDATE "personas_default"."users" SET "pw_tmp_aa6696fe8b" = CAST("order_total" AS VARCHAR) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "order_total"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_aa6696fe8b" TO "order_total"',
        'ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "pw_tmp_013f54400c" DOUBLE',
        'UPDATE "personas_default"."users" SET "pw_tmp_013f54400c" = CAST("age" AS DOUBLE) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "age"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_013f54400c" TO "age"',
        'ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "pw_tmp_fa4043818a" VARCHAR',
        'UPDATE "personas_default"."users" SET "pw_tmp_fa4043818a" = DATE_FORMAT(AT_TIMEZONE("last_seen", \'UTC\'), \'%Y-%m-%d %T.%f+00:00\') WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "last_seen"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_fa4043818a" TO "last_seen"',
        'ALTER TABLE "personas_default"."users" ADD COLUMN IF NOT EXISTS "pw_tmp_3a1ecbe411" VARCHAR',
        'UPDATE "personas_default"."users" SET "pw_tmp_3a1ecbe411" = CASE WHEN "vip_since" THEN \'true\' WHEN NOT "vip_since" THEN \'false\' END WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "vip_since"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_3a1ecbe411" TO "vip_since"',
    ],
    "tsql": [
        "ALTER TABLE [personas_default].[users] ADD [select] BIGINT, [2_orders] BIT",
        "BEGIN TRANSACTION",
        "ALTER TABLE [personas_default].[users] ADD [pw_tmp_aa6696fe8b] NVARCHAR(MAX)",
        "UPDATE [personas_default].[users] SET [pw_tmp_aa6696fe8b] = CONVERT(NVARCHAR(MAX), [order_total], 3) WHERE (1 = 1)",
        "ALTER TABLE [personas_default].[users] DROP COLUMN [order_total]",
        "EXECUTE [sp_rename] '[personas_default].[users].[pw_tmp_aa6696fe8b]', 'order_total', 'COLUMN'",
        "COMMIT TRANSACTION",
        "ALTER TABLE [personas_default].[users] ALTER COLUMN [age] FLOAT",
        "BEGIN TRANSACTION",
        "ALTER TABLE [personas_default].[users] ADD [pw_tmp_fa4043818a] NVARCHAR(MAX)",
        "UPDATE [personas_default].[users] SET [pw_tmp_fa4043818a] = FORMAT([last_seen] AT TIME ZONE 'UTC', 'yyyy-MM-dd HH:mm:ss.ffffff+00:00') WHERE (1 = 1)",
        "ALTER TABLE [personas_default].[users] DROP COLUMN [last_seen]",
        "EXECUTE [sp_rename] '[personas_default].[users].[pw_tmp_fa4043818a]', 'last_seen', 'COLUMN'",
        "COMMIT TRANSACTION",
        "BEGIN TRANSACTION",
        "ALTER TABLE [personas_default].[users] ADD [pw_tmp_3a1ecbe411] NVARCHAR(MAX)",
        "UPDATE [personas_default].[users] SET [pw_tmp_3a1ecbe411] = CASE WHEN [vip_since] <> 0 THEN 'true' WHEN NOT [vip_since] <> 0 THEN 'false' END WHERE (1 = 1)",
        "ALTER TABLE [personas_default].[users] DROP COLUMN [vip_since]",
        "EXECUTE [sp_rename] '[personas_default].[users].[pw_tmp_3a1ecbe411]', 'vip_since', 'COLUMN'",
        "COMMIT TRANSACTION",
    ],
    "oracle": [
        'ALTER TABLE "personas_default"."users" ADD "select" INT',
        'ALTER TABLE "personas_default"."users" ADD "2_orders" BOOLEAN',
        'ALTER TABLE "personas_default"."users" ADD "pw_tmp_aa6696fe8b" CLOB',
        'UPDATE "personas_default"."users" SET "pw_tmp_aa6696fe8b" = CAST("order_total" AS CLOB) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "order_total"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_aa6696fe8b" TO "order_total"',
        'ALTER TABLE "personas_default"."users" ADD "pw_tmp_013f54400c" DOUBLE PRECISION',
        'UPDATE "personas_default"."users" SET "pw_tmp_013f54400c" = CAST("age" AS DOUBLE PRECISION) WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "age"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_013f54400c" TO "age"',
        'ALTER TABLE "personas_default"."users" ADD "pw_tmp_fa4043818a" CLOB',
        'UPDATE "personas_default"."users" SET "pw_tmp_fa4043818a" = TO_CHAR("last_seen" AT TIME ZONE \'UTC\', \'YYYY-MM-DD HH24:MI:SS.FF6+00:00\') WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "last_seen"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_fa4043818a" TO "last_seen"',
        'ALTER TABLE "personas_default"."users" ADD "pw_tmp_3a1ecbe411" CLOB',
        'UPDATE "personas_default"."users" SET "pw_tmp_3a1ecbe411" = CASE WHEN "vip_since" THEN \'true\' WHEN NOT "vip_since" THEN \'false\' END WHERE TRUE',
        'ALTER TABLE "personas_default"."users" DROP COLUMN "vip_since"',
        'ALTER TABLE "personas_default"."users" RENAME COLUMN "pw_tmp_3a1ecbe411" TO "vip_since"',
    ],
}

# sqlglot writes T-SQL's IF NOT EXISTS as a guard around EXEC('<statement>') but cannot read
# that form back (its IF parser expects BEGIN ... END); the guard is compared as text and the
# statement inside EXEC is parsed.
_TSQL_GUARD = re.compile(r"^(IF NOT EXISTS \(.*\)) EXEC\('(.*)'\)$", re.DOTALL)


def parse(sql: str, dialect: str) -> list[exp.Expression | str]:
    """``sql`` as sqlglot trees (plus the guard text, for a guarded T-SQL statement)."""
    guarded = _TSQL_GUARD.match(sql)
    if guarded is not None:
        guard, inner = guarded.groups()
        return [guard, *parse(inner.replace("''", "'"), dialect)]
    tree = sqlglot.parse_one(sql, read=dialect, error_level=ErrorLevel.RAISE)
    assert not isinstance(tree, exp.Command), f"sqlglot only read {sql!r} as a raw command"
    return [tree]


def assert_parses_back(sql: str, dialect: str) -> None:
    """sqlglot reads ``sql`` in its dialect and writes the same text again."""
    guarded = _TSQL_GUARD.match(sql)
    if guarded is not None:
        assert_parses_back(guarded.group(2).replace("''", "'"), dialect)
        return
    (tree,) = parse(sql, dialect)
    assert isinstance(tree, exp.Expression)
    again = tree.sql(dialect=dialect, identify=True, unsupported_level=ErrorLevel.RAISE)
    assert again == sql, f"{dialect}: {sql!r} reads back as {again!r}"


def validate_all(build: Callable[[str], list[str]], write: dict[str, list[str]]) -> None:
    """``build(dialect)`` gives ``write[dialect]`` for every dialect, compared as trees."""
    for dialect, expected in write.items():
        got = build(dialect)
        assert len(got) == len(expected), f"{dialect}: {len(got)} statements\n" + "\n".join(got)
        for written, wanted in zip(got, expected, strict=True):
            assert parse(written, dialect) == parse(wanted, dialect), (
                f"{dialect}:\n  got      {written}\n  expected {wanted}"
            )
            assert_parses_back(written, dialect)


def test_create_golden() -> None:
    validate_all(lambda dialect: create_statements(BEFORE, dialect), CREATE)


def test_migrate_golden() -> None:
    validate_all(lambda dialect: migrate_statements(BEFORE, AFTER, dialect), MIGRATE)


def test_helper_tells_different_trees_apart() -> None:
    """The comparison is on trees: spacing and case do not matter, a type does."""
    sql = 'CREATE TABLE "s"."t" ("a" BIGINT)'
    assert parse(sql, "snowflake") == parse('create table "s"."t" ( "a"  bigint )', "snowflake")
    assert parse(sql, "snowflake") != parse('CREATE TABLE "s"."t" ("a" INT)', "snowflake")
    with pytest.raises(AssertionError):
        validate_all(lambda _: [sql], {"snowflake": ['CREATE TABLE "s"."t" ("a" DOUBLE)']})


WIDE = Space(
    traits=[
        ComputedTrait("n", T.INTEGER),
        ComputedTrait("f", T.NUMBER),
        ComputedTrait("b", T.BOOLEAN),
        ComputedTrait("t", T.TIMESTAMP),
        ComputedTrait("i", T.INTEGER),
        ComputedTrait("j", T.JSON),
        ComputedTrait("gone", T.STRING),
    ],
    audiences=[Audience("vip"), Audience("from")],
)
WIDER = Space(
    traits=[
        ComputedTrait("n", T.NUMBER),
        ComputedTrait("f", T.STRING),
        ComputedTrait("b", T.STRING),
        ComputedTrait("t", T.STRING),
        ComputedTrait("i", T.STRING),
        ComputedTrait("j", T.JSON),
        ComputedTrait("added", T.TIMESTAMP),
    ],
    audiences=[Audience("vip"), Audience("from"), Audience("Group By")],
)


@pytest.mark.parametrize("dialect", [*sorted(WAREHOUSES), "oracle", "presto"])
def test_every_statement_parses_back(dialect: str, caplog: pytest.LogCaptureFixture) -> None:
    """Create, every widening, an added key and a dropped one: sqlglot reads each one back.

    sqlglot says nothing while writing them: no "unsupported" (render raises on those) and no
    other warning either.
    """
    with caplog.at_level(logging.WARNING, logger="sqlglot"):
        statements = [
            *create_statements(WIDE, dialect),
            *migrate_statements(WIDE, WIDER, dialect, drop_removed=True),
            *drop_column_statements(WIDE, ["from"], dialect),
        ]
    assert [r.getMessage() for r in caplog.records if r.name.startswith("sqlglot")] == []
    assert len(statements) > 10
    for sql in statements:
        assert_parses_back(sql, dialect)


def test_tsql_guard_is_checked() -> None:
    """The T-SQL guard keeps CREATE idempotent; its statement parses as a CREATE."""
    (schema, users, runs) = create_statements(Space(sync_identifies=False), "tsql")
    assert schema.startswith(
        "IF NOT EXISTS (SELECT * FROM INFORMATION_SCHEMA.SCHEMATA "
        "WHERE SCHEMA_NAME = 'personas_default')"
    )
    for sql in (users, runs):
        guard, tree = parse(sql, "tsql")
        assert "INFORMATION_SCHEMA.TABLES" in str(guard)
        assert isinstance(tree, exp.Create)
