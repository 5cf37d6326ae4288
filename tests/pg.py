"""The throwaway PostgreSQL (and PgBouncer) harness lives in devtools/pg.py, so bench/ can use it
without importing tests/; re-exported here for the tests."""

from devtools.pg import PgBouncer, PostgresCluster, find_pg_bin, find_pgbouncer, free_port

__all__ = ["PgBouncer", "PostgresCluster", "find_pg_bin", "find_pgbouncer", "free_port"]
