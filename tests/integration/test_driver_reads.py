"""Driver.rows and Driver.row: statements read at once, on PostgreSQL through the cursor kept for each
connection (decision 0065), on both stores."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from hpcplane.store.db import Database, Driver


def test_reads_in_a_row_each_get_their_own_answer_and_leave_handed_out_cursors_alone(db: Database) -> None:
    with db.driver() as driver:
        held = driver.execute("SELECT ? UNION ALL SELECT ?", ["held-1", "held-2"])
        assert driver.row("SELECT ?", ["one"]) == ("one",)
        assert driver.rows("SELECT ? UNION ALL SELECT ?", ["a", "b"]) == [("a",), ("b",)]
        assert driver.row("SELECT 1 WHERE 1 = 0") is None
        assert driver.rows("SELECT 1 WHERE 1 = 0") == []
        # The cursor execute handed out still holds its own rows, the reads between notwithstanding.
        assert [tuple(r) for r in held.fetchall()] == [("held-1",), ("held-2",)]


def test_a_failed_read_leaves_the_kept_cursor_usable(db: Database) -> None:
    with db.driver() as driver:
        with pytest.raises((psycopg.Error, sqlite3.Error)):
            driver.row("SELECT * FROM no_such_table")
        assert driver.row("SELECT ?", ["after"]) == ("after",)


def test_reads_inside_a_write_join_its_transaction(db: Database) -> None:
    insert = "INSERT INTO meta (key, value) VALUES (?, ?)"
    with db.write() as conn:
        driver = Driver.within(conn)
        driver.execute(insert, ["driver-reads", "inside"])
        assert driver.row("SELECT value FROM meta WHERE key = ?", ["driver-reads"]) == ("inside",)
    with db.driver() as driver:
        assert driver.rows("SELECT value FROM meta WHERE key = ?", ["driver-reads"]) == [("inside",)]
