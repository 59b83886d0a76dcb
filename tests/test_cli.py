"""The command line, run as users run it: `python -m personas_warehouse ...` in a subprocess.

Every subcommand is run for what it does (its output executed or read back from a real engine)
and for its error paths: one line on stderr, exit code 2, no traceback, nothing written.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest
from engines import required_engines

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
POSTGRES_URL = os.environ.get("PW_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("PW_TEST_MYSQL_URL")
T0 = "2024-05-01T00:00:00Z"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the command line in a fresh interpreter, as a user would."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("COLUMNS", None)
    return subprocess.run(
        [sys.executable, "-m", "personas_warehouse", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def ok(*args: str, cwd: Path | None = None) -> str:
    result = run(*args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def bad_input(*args: str, cwd: Path | None = None) -> str:
    """Run a command that must fail on its input: exit 2, one line, no traceback."""
    result = run(*args, cwd=cwd)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


SPACE = """\
schema = "{schema}"
audiences = ["vip", "churn_risk"]

[traits]
ltv = "number"
orders = "integer"
plan = "string"
seen_at = "timestamp"
"""


@pytest.fixture
def space_file(tmp_path: Path) -> Path:
    return write(tmp_path / "space.toml", SPACE.format(schema="personas_default"))


# --------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------


def test_validate_summarises_keys_columns_and_tables() -> None:
    out = ok("validate", str(EXAMPLES / "space.toml"))
    assert "ok for postgres: schema 'personas_default', 6 traits, 3 audiences" in out
    assert re.search(r"^2FA Enabled\s+trait\s+boolean\s+2fa_enabled\s+yes$", out, re.M)
    assert "tables synced: users, identifies" in out
    out = ok("validate", str(EXAMPLES / "space.toml"), "--dialect", "bigquery")
    assert re.search(r"^2FA Enabled\s+trait\s+boolean\s+_2fa_enabled\s+yes$", out, re.M)


def test_validate_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", '[traits]\nltv = "money"\n')
    line = bad_input("validate", str(bad))
    assert line.startswith("personas-warehouse validate: error: ")
    assert f"{bad}: traits.ltv: unknown trait type 'money'" in line
    line = bad_input("validate", str(tmp_path / "missing.toml"))
    assert "missing.toml: no such file" in line
    line = bad_input("validate")  # argument errors are one line too
    assert "required: SPACE.toml" in line
    wide = ", ".join(f'"a{i}"' for i in range(1100))
    many = write(tmp_path / "many.toml", f"audiences = [{wide}]\n")
    assert "1100 audiences" in ok("validate", str(many))  # fine on PostgreSQL (1600 columns)
    line = bad_input("validate", str(many), "--dialect", "mysql")
    assert "mysql allows 1017 per table" in line
    long_schema = write(tmp_path / "long.toml", f'schema = "{"s" * 70}"\n')
    line = bad_input("validate", str(long_schema))
    assert "schema name" in line
    line = bad_input("validate", str(many), "--dialect", "nosuch")
    assert "unknown dialect 'nosuch'" in line


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "schema = 1\n")
    result = run("validate", str(bad), "--debug")
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("personas-warehouse validate: error")


# --------------------------------------------------------------------------------------------
# ddl / migrate (the statements run on real engines)
# --------------------------------------------------------------------------------------------


def duckdb_columns(path: Path, schema: str, table: str) -> list[tuple[str, str]]:
    import duckdb

    with duckdb.connect(str(path)) as con:
        return con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()


def run_duckdb_script(path: Path, script: str) -> None:
    import duckdb

    with duckdb.connect(str(path)) as con:
        for statement in script.split(";\n"):
            if statement.strip() and not statement.lstrip().startswith("--"):
                con.execute(statement)


def test_ddl_statements_create_the_tables_on_duckdb(tmp_path: Path, space_file: Path) -> None:
    script = ok("ddl", "--space", str(space_file), "--dialect", "duckdb")
    assert script.count(";\n") == 4  # schema, identifies, users, sync_runs
    db = tmp_path / "ddl.duckdb"
    run_duckdb_script(db, script)
    run_duckdb_script(db, script)  # idempotent
    users = duckdb_columns(db, "personas_default", "users")
    assert [name for name, _ in users] == [
        "id", "ltv", "orders", "plan", "seen_at", "vip", "churn_risk",
        "timestamp", "received_at", "uuid_ts",
    ]  # fmt: skip
    assert dict(users)["seen_at"] == "TIMESTAMP WITH TIME ZONE"
    assert dict(users)["vip"] == "BOOLEAN"
    identifies = [name for name, _ in duckdb_columns(db, "personas_default", "identifies")]
    assert identifies[:6] == [
        "id",
        "user_id",
        "timestamp",
        "received_at",
        "uuid_ts",
        "cleared_keys",
    ]


@pytest.mark.skipif(
    POSTGRES_URL is None and "postgres" not in required_engines(),
    reason="set PW_TEST_POSTGRES_URL to run on PostgreSQL",
)
def test_ddl_statements_create_the_tables_on_postgres(tmp_path: Path) -> None:
    import psycopg

    schema = f"pw_cli_{secrets.token_hex(4)}"
    space = write(tmp_path / "space.toml", SPACE.format(schema=schema))
    script = ok("ddl", "--space", str(space), "--dialect", "postgres")
    assert POSTGRES_URL is not None, "PW_TEST_REQUIRE names postgres: set PW_TEST_POSTGRES_URL"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as con:
        try:
            con.execute(script)
            rows = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'users' ORDER BY ordinal_position",
                [schema],
            ).fetchall()
        finally:
            con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert rows[:5] == [
        ("id", "text"),
        ("ltv", "double precision"),
        ("orders", "bigint"),
        ("plan", "text"),
        ("seen_at", "timestamp with time zone"),
    ]


def test_ddl_bad_input(space_file: Path, tmp_path: Path) -> None:
    line = bad_input("ddl", "--space", str(space_file), "--dialect", "nosuch")
    assert "unknown dialect 'nosuch'; known dialects: " in line
    assert "snowflake" in line
    line = bad_input("ddl", "--space", str(space_file))
    assert "required: --dialect" in line
    bad = write(tmp_path / "bad.toml", 'audiences = ["orderID", "order id"]\n')
    line = bad_input("ddl", "--space", str(bad), "--dialect", "duckdb")
    assert "bad.toml: keys 'orderID' and 'order id' would share the column 'order_id'" in line


NEW_SPACE = """\
schema = "personas_default"
audiences = ["vip", "churn_risk", "newsletter"]

[traits]
ltv = "number"
orders = "integer"
plan = "string"
seen_at = "timestamp"
country = "string"
"""


def test_migrate_adds_the_new_columns_on_duckdb(tmp_path: Path, space_file: Path) -> None:
    new = write(tmp_path / "new.toml", NEW_SPACE)
    db = tmp_path / "m.duckdb"
    run_duckdb_script(db, ok("ddl", "--space", str(space_file), "--dialect", "duckdb"))
    script = ok("migrate", "--from", str(space_file), "--to", str(new), "--dialect", "duckdb")
    run_duckdb_script(db, script)
    users = [name for name, _ in duckdb_columns(db, "personas_default", "users")]
    assert {"country", "newsletter"} <= set(users)
    identifies = [name for name, _ in duckdb_columns(db, "personas_default", "identifies")]
    assert {"country", "newsletter"} <= set(identifies)
    same = ok("migrate", "--from", str(new), "--to", str(new), "--dialect", "duckdb")
    assert same.startswith("-- nothing to migrate")


def test_migrate_bad_input(tmp_path: Path, space_file: Path) -> None:
    narrowed = write(
        tmp_path / "narrow.toml",
        SPACE.format(schema="personas_default").replace('"number"', '"integer"'),
    )
    line = bad_input(
        "migrate", "--from", str(space_file), "--to", str(narrowed), "--dialect", "duckdb"
    )
    assert "ltv" in line
    line = bad_input(
        "migrate",
        "--from",
        str(space_file),
        "--to",
        str(tmp_path / "none.toml"),
        "--dialect",
        "duckdb",
    )
    assert "none.toml: no such file" in line
    line = bad_input(
        "migrate", "--from", str(space_file), "--to", str(space_file), "--dialect", "nope"
    )
    assert "unknown dialect 'nope'" in line


# --------------------------------------------------------------------------------------------
# as-of
# --------------------------------------------------------------------------------------------


def test_as_of_bad_input(space_file: Path) -> None:
    line = bad_input(
        "as-of", "--space", str(space_file), "--at", "2024-05-01T12:00", "--dialect", "duckdb"
    )
    assert "--at 2024-05-01T12:00 has no UTC offset; add one, e.g. 2024-05-01T12:00Z" in line
    line = bad_input(
        "as-of",
        "--space",
        str(space_file),
        "--at",
        T0,
        "--dialect",
        "duckdb",
        "--known-at",
        "yesterday",
    )
    assert "--known-at 'yesterday' is not an ISO-8601 time stamp" in line
    line = bad_input("as-of", "--space", str(space_file), "--at", T0, "--dialect", "klingon")
    assert "unknown dialect 'klingon'" in line


# --------------------------------------------------------------------------------------------
# sync / reconstruct / history / audience-size, on real engines
# --------------------------------------------------------------------------------------------

T1 = "2024-05-01T10:00:00Z"
T2 = "2024-05-01T11:00:00Z"
RUN1 = """\
{"user_id": "u1", "traits": {"ltv": 120.5, "orders": 3, "plan": "pro", "seen_at": "2024-05-01T09:30:00+02:00"}, "audiences": ["vip"]}
{"user_id": "u2", "traits": {"ltv": 15, "plan": "free"}, "audiences": {"churn_risk": true, "vip": false}}
"""  # noqa: E501 (one JSON object per line)
RUN2 = """\
user_id,ltv,plan,vip,churn_risk
u1,130,,false,
u2,15,free,,yes
u3,7.25,free,1,0
"""


class Target:
    """A database the CLI syncs into, and a way to read its tables back."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.schema = "personas_default"
        if kind == "duckdb":
            self.url = f"duckdb:///{tmp_path / 'w.duckdb'}"
        elif kind == "sqlite":
            self.url = f"sqlite:///{tmp_path / 'w.db'}"
        else:
            url = {"postgres": POSTGRES_URL, "mysql": MYSQL_URL}[kind]
            assert url is not None, f"PW_TEST_REQUIRE names {kind}: set its PW_TEST_*_URL"
            self.url = url
            self.schema = f"pw_cli_{secrets.token_hex(4)}"
        self.space = write(tmp_path / "space.toml", SPACE.format(schema=self.schema))

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        from personas_warehouse.runner.connections import connect_url

        connection = connect_url(self.url)
        try:
            if self.kind == "sqlite":
                connection.create_schema(self.schema)
            return connection.query(sql.replace("SCHEMA", connection.quote(self.schema)))
        finally:
            connection.close()

    def drop(self) -> None:
        if self.kind in {"postgres", "mysql"}:
            from personas_warehouse.runner.connections import connect_url

            with connect_url(self.url) as connection:
                connection.drop_schema(self.schema)


def server(kind: str, url: str | None, variable: str) -> object:
    """A server engine: skipped when its URL is not set, unless PW_TEST_REQUIRE names it."""
    missing = url is None and kind not in required_engines()
    return pytest.param(kind, marks=pytest.mark.skipif(missing, reason=f"set {variable}"))


TARGETS = [
    "duckdb",
    "sqlite",
    server("postgres", POSTGRES_URL, "PW_TEST_POSTGRES_URL"),
    server("mysql", MYSQL_URL, "PW_TEST_MYSQL_URL"),
]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    made = Target(request.param, tmp_path)
    yield made
    made.drop()


def cli_json(*args: str) -> object:
    return json.loads(ok(*args))


def test_sync_then_rebuild_the_past(target: Target, tmp_path: Path) -> None:
    run1 = write(tmp_path / "run1.jsonl", RUN1)
    run2 = write(tmp_path / "run2.csv", RUN2)
    db = ["--space", str(target.space), "--database", target.url]

    result = run("sync", *db, "--input", str(run1), "--at", T1)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress bar, quiet logging
    assert "2 users changed, 2 events and 2 users rows written" in result.stdout
    between = dt.datetime.now(dt.UTC)
    out = ok("sync", *db, "--input", str(run2), "--at", T2)
    assert "2 users changed, 2 events and 2 users rows written" in out
    again = ok("sync", *db, "--input", str(run2), "--at", T2)
    assert "0 users changed, 0 events and 0 users rows written" in again

    users = target.rows(
        "SELECT id, ltv, orders, plan, vip, churn_risk FROM SCHEMA.users ORDER BY id"
    )

    def flag(value: object) -> bool | None:
        return None if value is None else bool(value)  # SQLite stores booleans as 0 / 1

    assert [(u, float(ltv), o, p, flag(v), flag(c)) for u, ltv, o, p, v, c in users] == [  # type: ignore[arg-type]
        ("u1", 130.0, 3, None, False, None),
        ("u2", 15.0, None, "free", None, True),
        ("u3", 7.25, None, "free", True, None),
    ]
    events = target.rows(
        "SELECT user_id, cleared_keys FROM SCHEMA.identifies ORDER BY timestamp, user_id"
    )
    assert [row[0] for row in events] == ["u1", "u2", "u1", "u3"]
    assert events[2][1] == ",plan,"  # u1's plan was cleared by the empty CSV cell

    state = cli_json("reconstruct", *db, "--user", "u1", "--at", T1, "--json")
    assert state == {
        "user_id": "u1",
        "at": "2024-05-01T10:00:00+00:00",
        "known_at": None,
        "traits": {
            "ltv": 120.5,
            "orders": 3,
            "plan": "pro",
            "seen_at": "2024-05-01T07:30:00+00:00",
        },
        "audiences": {"vip": True, "churn_risk": None},
    }
    state = cli_json("reconstruct", *db, "--user", "u1", "--at", T2, "--json")
    assert state["traits"] == {
        "ltv": 130.0,
        "orders": 3,
        "plan": None,
        "seen_at": "2024-05-01T07:30:00+00:00",
    }
    assert state["audiences"] == {"vip": False, "churn_risk": None}
    known = cli_json(
        "reconstruct", *db, "--user", "u1", "--at", T2, "--known-at", between.isoformat(), "--json"
    )
    assert known["traits"]["plan"] == "pro"  # the second run had not been received yet
    assert known["audiences"]["vip"] is True
    before = cli_json("reconstruct", *db, "--user", "u3", "--at", T1, "--json")
    assert before["audiences"] == {"vip": None, "churn_risk": None}  # not yet seen: all null
    table = ok("reconstruct", *db, "--user", "u1", "--at", T2)
    assert re.search(r"^vip\s+audience\s+false$", table, re.M)
    assert re.search(r"^plan\s+trait\s+null$", table, re.M)

    # The as-of query, printed by `as-of`, run by the engine itself: the users table at T1.
    query = ok("as-of", "--space", str(target.space), "--at", T1, "--dialect", target.kind)
    rows = sorted(target.rows(query.rstrip().rstrip(";")))
    assert [(row[0], float(row[1]), row[3], flag(row[5])) for row in rows] == [
        ("u1", 120.5, "pro", True),
        ("u2", 15.0, "free", None),
    ]
    assert [flag(row[6]) for row in rows] == [None, True]  # churn_risk
    known = ok(
        "as-of", "--space", str(target.space), "--at", T2, "--known-at", between.isoformat(),
        "--dialect", target.kind,
    )  # fmt: skip
    rows = sorted(target.rows(known.rstrip().rstrip(";")))
    assert [(row[0], row[3], flag(row[5])) for row in rows] == [
        ("u1", "pro", True),
        ("u2", "free", None),
    ]

    changes = cli_json("history", *db, "--user", "u1", "--json")
    assert isinstance(changes, list)
    assert [(c["timestamp"][:19], c["key"], c["old"], c["new"]) for c in changes] == [
        ("2024-05-01T10:00:00", "ltv", None, 120.5),
        ("2024-05-01T10:00:00", "orders", None, 3),
        ("2024-05-01T10:00:00", "plan", None, "pro"),
        ("2024-05-01T10:00:00", "seen_at", None, "2024-05-01T07:30:00+00:00"),
        ("2024-05-01T10:00:00", "vip", None, True),
        ("2024-05-01T11:00:00", "ltv", 120.5, 130.0),
        ("2024-05-01T11:00:00", "plan", "pro", None),
        ("2024-05-01T11:00:00", "vip", True, False),
    ]
    text = ok("history", *db, "--user", "u1")
    assert text.startswith("user u1: 8 changes\n")
    runs = cli_json("history", *db, "--json")
    assert isinstance(runs, list)
    assert [(r["at"][:19], r["status"], r["rows_written"]) for r in runs] == [
        ("2024-05-01T10:00:00", "succeeded", 4),
        ("2024-05-01T11:00:00", "succeeded", 4),
        ("2024-05-01T11:00:00", "succeeded", 0),
    ]

    svg = tmp_path / "vip.svg"
    sizes = cli_json(
        "audience-size", *db, "--audience", "vip", "--from", "2024-05-01T09:00Z",
        "--to", "2024-05-01T11:00Z", "--every", "30m", "--svg", str(svg), "--json",
    )  # fmt: skip
    assert [(s["time"][11:16], s["size"]) for s in sizes] == [
        ("09:00", 0), ("09:30", 0), ("10:00", 1), ("10:30", 1), ("11:00", 1),
    ]  # fmt: skip
    drawing = ElementTree.fromstring(svg.read_text(encoding="utf-8"))  # well-formed SVG
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert drawing.tag == "{http://www.w3.org/2000/svg}svg"
    line = drawing.find("svg:polyline", ns)
    assert line is not None
    assert len(line.attrib["points"].split()) == 5
    assert len(drawing.findall("svg:circle", ns)) == 5
    table = ok("audience-size", *db, "--audience", "churn_risk", "--from", T1, "--to", T2)
    assert table.splitlines()[2:] == ["2024-05-01T10:00:00Z  1", "2024-05-01T11:00:00Z  1"]


# --------------------------------------------------------------------------------------------
# Error paths of the warehouse commands: exit 2, one line, nothing written
# --------------------------------------------------------------------------------------------


@pytest.fixture
def synced(tmp_path: Path, space_file: Path) -> list[str]:
    """A DuckDB file holding one sync of RUN1; the --space/--database arguments for it."""
    db = ["--space", str(space_file), "--database", f"duckdb:///{tmp_path / 'w.duckdb'}"]
    ok("sync", *db, "--input", str(write(tmp_path / "run1.jsonl", RUN1)), "--at", T1)
    return db


def test_sync_bad_input_writes_nothing(tmp_path: Path, space_file: Path) -> None:
    db_file = tmp_path / "new.duckdb"
    db = ["--space", str(space_file), "--database", f"duckdb:///{db_file}"]
    good = write(tmp_path / "good.jsonl", RUN1)
    cases = [
        (write(tmp_path / "a.jsonl", RUN1 + "{not json\n"), [], "a.jsonl:3: not a JSON object"),
        (
            write(tmp_path / "b.jsonl", '{"user_id": "u1", "traits": {"ltv": "high"}}\n'),
            [],
            "b.jsonl:1: trait 'ltv' is NUMBER, got 'high'",
        ),
        (
            write(tmp_path / "c.jsonl", '{"user_id": "u1", "traits": {"nope": 1}}\n'),
            [],
            "c.jsonl:1: 'nope' is not a trait of the space",
        ),
        (
            write(tmp_path / "d.jsonl", '{"user_id": "u1", "audiences": ["vip", "gold"]}\n'),
            [],
            "d.jsonl:1: 'gold' is not an audience of the space",
        ),
        (
            write(tmp_path / "e.jsonl", '{"user_id": "u1"}\n{"user_id": "u1"}\n'),
            [],
            "e.jsonl:2: user 'u1' appears twice (first at",
        ),
        (
            write(tmp_path / "f.csv", "user_id,orders\nu1,3.5\n"),
            [],
            "f.csv:2: trait 'orders' is INTEGER, the cell '3.5' is not one",
        ),
        (
            write(
                tmp_path / "g.jsonl",
                '{"user_id": "u1", "traits": {"seen_at": "2024-05-01T10:00"}}\n',
            ),
            [],
            "has no UTC offset",
        ),
        (write(tmp_path / "h.txt", ""), [], "cannot tell the format from the extension '.txt'"),
        (tmp_path / "missing.jsonl", [], "missing.jsonl: no such file"),
        (good, ["--at", "2024-05-01 10:00"], "--at 2024-05-01 10:00 has no UTC offset"),
        (good, ["--audiences", "vip,gold"], "--audiences: 'gold' is not an audience"),
    ]
    for path, extra, expected in cases:
        line = bad_input("sync", *db, "--input", str(path), *extra)
        assert line.startswith("personas-warehouse sync: error: ")
        assert expected in line, line
        assert not db_file.exists(), expected  # nothing written, not even an empty database


def test_sync_unreachable_database(tmp_path: Path, space_file: Path) -> None:
    results = str(write(tmp_path / "r.jsonl", RUN1))
    line = bad_input(
        "sync", "--space", str(space_file), "--input", results,
        "--database", "postgresql://postgres:secret@127.0.0.1:1/test",
    )  # fmt: skip
    assert "--database postgresql://postgres:***@127.0.0.1:1/test: cannot connect" in line
    assert "secret" not in line
    line = bad_input(
        "sync", "--space", str(space_file), "--input", results,
        "--database", f"duckdb:///{tmp_path / 'no' / 'such' / 'dir.duckdb'}",
    )  # fmt: skip
    assert "does not exist; create it first" in line
    line = bad_input("sync", "--space", str(space_file), "--input", results, "--database", "x.txt")
    assert "--database 'x.txt' is not a URL" in line
    line = bad_input(
        "sync", "--space", str(space_file), "--input", results, "--database", "oracle://h/db"
    )
    assert "unsupported connection URL" in line


def test_sync_refuses_to_go_back_in_time(synced: list[str], tmp_path: Path) -> None:
    results = str(tmp_path / "run1.jsonl")
    line = bad_input("sync", *synced, "--input", results, "--at", "2024-05-01T09:00Z")
    assert "is before the latest successful sync" in line


def test_reconstruct_bad_input(synced: list[str], tmp_path: Path, space_file: Path) -> None:
    line = bad_input("reconstruct", *synced, "--user", "nobody", "--at", T1)
    assert "--user 'nobody' has no events in schema 'personas_default'" in line
    line = bad_input("reconstruct", *synced, "--user", "u1", "--at", "2024-05-01T10:00")
    assert "--at 2024-05-01T10:00 has no UTC offset" in line
    line = bad_input("reconstruct", *synced, "--user", "u1", "--at", T1, "--known-at", "soon")
    assert "--known-at 'soon' is not an ISO-8601 time stamp" in line
    missing = tmp_path / "missing.duckdb"
    line = bad_input(
        "reconstruct", "--space", str(space_file), "--database", f"duckdb:///{missing}",
        "--user", "u1", "--at", T1,
    )  # fmt: skip
    assert "no such file" in line
    assert not missing.exists()  # a read never creates a database
    other = write(tmp_path / "other.toml", SPACE.format(schema="elsewhere"))
    line = bad_input(
        "reconstruct", "--space", str(other), synced[2], synced[3], "--user", "u1", "--at", T1
    )
    assert "has no users, identifies, sync_runs table in schema 'elsewhere'" in line


def test_history_bad_input(synced: list[str], tmp_path: Path, space_file: Path) -> None:
    line = bad_input("history", *synced, "--user", "nobody")
    assert "--user 'nobody' has no events" in line
    line = bad_input(
        "history", "--space", str(space_file), "--database", f"sqlite:///{tmp_path / 'n.db'}"
    )
    assert "no such file" in line
    assert not (tmp_path / "n.db").exists()
    no_log = write(
        tmp_path / "nolog.toml",
        SPACE.format(schema="personas_default") + "[sync]\nidentifies = false\n",
    )
    line = bad_input("history", "--space", str(no_log), synced[2], synced[3], "--user", "u1")
    assert "does not sync it ([sync] identifies = false)" in line


def test_audience_size_bad_input(synced: list[str], tmp_path: Path) -> None:
    base = ["audience-size", *synced, "--from", T1, "--to", T2]
    line = bad_input(*base, "--audience", "gold")
    assert (
        "--audience 'gold' is not a synced audience of the space; known: ['vip', 'churn_risk']"
        in line
    )
    line = bad_input(*base, "--audience", "vip", "--every", "soon")
    assert "--every 'soon' is not a duration" in line
    line = bad_input(*base, "--audience", "vip", "--every", "0h")
    assert "must be longer than zero" in line
    line = bad_input("audience-size", *synced, "--audience", "vip", "--from", T2, "--to", T1)
    assert f"--to {T1} is before --from {T2}; swap them" in line
    line = bad_input(*base, "--audience", "vip", "--every", "1s", "--to", "2025-05-01T00:00Z")
    assert "points; at most 10000" in line
    line = bad_input(*base, "--audience", "vip", "--svg", str(tmp_path / "nope" / "x.svg"))
    assert "does not exist" in line
    line = bad_input(*base, "--audience", "vip", "--from", "2024-05-01")
    assert "--from 2024-05-01 has no UTC offset" in line


def test_sync_draws_a_progress_bar_on_a_terminal(tmp_path: Path, space_file: Path) -> None:
    import pty

    results = write(tmp_path / "r.jsonl", RUN1)
    primary, secondary = pty.openpty()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "personas_warehouse",
            "sync",
            "--space",
            str(space_file),
            "--database",
            f"duckdb:///{tmp_path / 'p.duckdb'}",
            "--input",
            str(results),
            "--at",
            T1,
        ],
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
        timeout=300,
        check=False,
    )
    os.close(secondary)
    drawn = b""
    try:
        while chunk := os.read(primary, 65536):
            drawn += chunk
    except OSError:  # the terminal is closed once everything is read
        pass
    os.close(primary)
    assert process.returncode == 0
    assert b"\r[" in drawn
    assert b"100% users 2/2" in drawn
    assert drawn.endswith(b"\r\x1b[K")  # the bar is cleared at the end


# --------------------------------------------------------------------------------------------
# demo
# --------------------------------------------------------------------------------------------


def sections(text: str) -> dict[str, list[str]]:
    parts: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("== "):
            current = line
            parts[current] = []
        elif current:
            parts[current].append(line)
    return parts


def table_rows(lines: list[str]) -> list[list[str]]:
    """The rows of a printed table (after its header and rule), split on runs of spaces."""
    rows = []
    for line in lines[2:]:
        if not line.strip() or line.startswith("check:"):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_demo_rebuilds_a_past_hour_that_matches_its_history(tmp_path: Path) -> None:
    out = ok("demo", cwd=tmp_path)
    assert (tmp_path / "demo.duckdb").exists()
    assert (tmp_path / "demo.space.toml").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    parts = sections(out)
    titles = list(parts)
    assert titles[0] == "== 1. The users table (40 rows) =="
    assert len(table_rows(parts[titles[0]])) == 40

    history_title, rebuilt_title, sizes_title = titles[1], titles[2], titles[3]
    user = re.match(r"== 2\. The history of (\S+) \((\d+) changes\) ==", history_title)
    assert user is not None
    changes = table_rows(parts[history_title])
    assert len(changes) == int(user.group(2)) > 10
    rebuilt = re.match(
        rf"== 3\. {user.group(1)} rebuilt by the warehouse at (\S+) ==", rebuilt_title
    )
    assert rebuilt is not None
    past = rebuilt.group(1)

    # Fold the printed history up to the past hour, independently of the demo's own check.
    space_keys = [row[0] for row in table_rows(parts[rebuilt_title][1:])]
    expected = dict.fromkeys(space_keys, "null")
    for timestamp, key, _old, new, _received, _message in changes:
        if dt.datetime.fromisoformat(timestamp) <= dt.datetime.fromisoformat(past):
            expected[key] = new
    printed = {row[0]: row[2] for row in table_rows(parts[rebuilt_title][1:])}
    assert printed == expected
    assert any(value == "null" for value in printed.values()) or len(printed) == 7
    assert f"check: the rebuilt state matches the history above folded up to {past}" in out

    # The same user rebuilt by the `reconstruct` subcommand agrees with the demo.
    again = ok(
        "reconstruct", "--space", str(tmp_path / "demo.space.toml"),
        "--database", "demo.duckdb", "--user", user.group(1), "--at", past, cwd=tmp_path,
    )  # fmt: skip
    assert {row[0]: row[2] for row in table_rows(again.splitlines()[1:])} == printed

    sizes = table_rows(parts[sizes_title])
    assert len(sizes) == 24
    assert "check: the identifies log, rebuilt in Python, gives the same sizes" in out
    assert [row[0][11:16] for row in sizes] == [f"{h:02d}:00" for h in range(24)]
    assert len({row[1] for row in sizes}) > 3  # the audiences churn over the day

    # Deterministic: a second run replaces the demo database and prints the same thing.
    assert ok("demo", cwd=tmp_path) == out


def test_demo_bad_input(tmp_path: Path) -> None:
    precious = write(tmp_path / "precious.duckdb", "not a database")
    line = bad_input("demo", "--path", str(precious))
    assert "exists and is not a demo database" in line
    assert precious.read_text(encoding="utf-8") == "not a database"  # untouched
    line = bad_input("demo", "--path", str(tmp_path / "no" / "dir" / "demo.duckdb"))
    assert "does not exist" in line
    line = bad_input("demo", "--hours", "1")
    assert "--hours at least 2" in line
    line = bad_input("demo", "--users", "many")
    assert "invalid int value: 'many'" in line


# --------------------------------------------------------------------------------------------
# The results file format, in process (what `sync` hands to the library)
# --------------------------------------------------------------------------------------------


def test_results_files_become_computed_results() -> None:
    import personas_warehouse as pw
    from personas_warehouse.cli.inputs import UsageError, parse_results

    space = pw.Space(
        traits=[
            pw.ComputedTrait("ltv", pw.TraitType.NUMBER),
            pw.ComputedTrait("orders", pw.TraitType.INTEGER),
            pw.ComputedTrait("plan", pw.TraitType.STRING),
            pw.ComputedTrait("seen_at", pw.TraitType.TIMESTAMP),
            pw.ComputedTrait("beta", pw.TraitType.BOOLEAN),
            pw.ComputedTrait("prefs", pw.TraitType.JSON),
        ],
        audiences=[pw.Audience("vip"), pw.Audience("churn_risk")],
    )
    jsonl = parse_results(RUN1, space, fmt="jsonl")
    assert {u: dict(v) for u, v in jsonl.traits.items()} == {
        "u1": {
            "ltv": 120.5,
            "orders": 3,
            "plan": "pro",
            "seen_at": dt.datetime(2024, 5, 1, 7, 30, tzinfo=dt.UTC),
        },
        "u2": {"ltv": 15, "plan": "free"},
    }
    assert dict(jsonl.audiences) == {"vip": {"u1"}, "churn_risk": {"u2"}}

    text = (
        "user_id,ltv,orders,plan,seen_at,beta,prefs,vip,churn_risk\n"
        'u1,1.5,2,,2024-05-01T12:00+02:00,yes,"{""a"": [1]}",true,\n'
        "u2,,,basic,,false,null,0,1\n"
    )
    csv = parse_results(text, space, fmt="csv")
    assert dict(csv.traits["u1"]) == {
        "ltv": 1.5,
        "orders": 2,
        "plan": None,  # an empty cell clears
        "seen_at": dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC),
        "beta": True,
        "prefs": {"a": [1]},
    }
    assert dict(csv.traits["u2"]) == {
        "ltv": None,
        "orders": None,
        "plan": "basic",
        "seen_at": None,
        "beta": False,
        "prefs": None,
    }
    assert dict(csv.audiences) == {"vip": {"u1"}, "churn_risk": {"u2"}}

    only_vip = parse_results(RUN1.splitlines()[0], space, fmt="jsonl", audiences=["vip"])
    assert dict(only_vip.audiences) == {"vip": {"u1"}}  # churn_risk is not computed: unchanged
    traits_only = parse_results(
        '{"user_id": "u9", "traits": {"plan": "x"}}', space, fmt="jsonl", audiences=[]
    )
    assert dict(traits_only.audiences) == {}
    with pytest.raises(UsageError, match="audience 'churn_risk' is not computed this run"):
        parse_results(RUN1, space, fmt="jsonl", audiences=["vip"])
    with pytest.raises(UsageError, match=r"<results>:1: unknown field 'values'"):
        parse_results('{"user_id": "u1", "values": {}}', space, fmt="jsonl")
    with pytest.raises(
        UsageError, match=r"<results>:1: 'vip' is not a trait of the space \(it is an audience"
    ):
        parse_results('{"user_id": "u1", "traits": {"vip": true}}', space, fmt="jsonl")
    with pytest.raises(UsageError, match=r"<results>:2: audience 'vip' takes true or false"):
        parse_results("user_id,vip\nu1,maybe\n", space, fmt="csv")
    with pytest.raises(UsageError, match=r"<results>:1: the header has no user_id column"):
        parse_results("id,vip\nu1,true\n", space, fmt="csv")
    with pytest.raises(UsageError, match=r"<results>:2: 1 cells for 2 columns"):
        parse_results("user_id,vip\nu1\n", space, fmt="csv")
    with pytest.raises(UsageError, match=r"trait 'orders' is INTEGER, got 1.5"):
        parse_results('{"user_id": "u1", "traits": {"orders": 1.5}}', space, fmt="jsonl")
    with pytest.raises(UsageError, match=r"a bool is not a number"):
        parse_results('{"user_id": "u1", "traits": {"ltv": true}}', space, fmt="jsonl")


def test_help_lists_every_subcommand_and_no_command_is_an_error() -> None:
    out = ok("--help")
    for command in (
        "validate", "ddl", "migrate", "as-of", "sync", "reconstruct", "history",
        "audience-size", "demo",
    ):  # fmt: skip
        assert command in out
    assert ok("--version").startswith("personas-warehouse ")
    line = bad_input()
    assert "required: COMMAND" in line
    line = bad_input("frobnicate")
    assert "invalid choice: 'frobnicate'" in line


def test_a_sync_that_fails_in_the_warehouse_leaves_no_new_database(tmp_path: Path) -> None:
    wide = ", ".join(f'"a{i}"' for i in range(2100))  # past SQLite's 2000 columns per table
    space = write(tmp_path / "wide.toml", f"audiences = [{wide}]\n")
    results = write(tmp_path / "r.jsonl", '{"user_id": "u1", "audiences": ["a1"]}\n')
    line = bad_input(
        "sync", "--space", str(space), "--input", str(results),
        "--database", f"sqlite:///{tmp_path / 'w.db'}", "--at", T1,
    )  # fmt: skip
    assert "sqlite allows 2000 per table" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "wide.toml"]
