#!/usr/bin/env python3
"""Reads a Delta table written by fhir_ingest::delta with three independent readers:
deltalake (delta-rs), polars (read_delta) and DuckDB (delta_scan, extension loaded by path
from the duckdb-extension-delta wheel), and checks what tests/delta_log.rs expects.

usage: delta_check.py TABLE_DIR EXPECTED_JSON

EXPECTED_JSON: {"version": 4, "num_rows": 7, "ids": [...], "removed_ids": [...],
                "app_id": "src", "txn_version": 4, "partitions": {"2026-01-01": 2, ...}}
Exits non-zero on any mismatch.
"""
import collections
import importlib.util
import json
import pathlib
import sys

import deltalake
import duckdb
import polars as pl

path = str(pathlib.Path(sys.argv[1]).resolve())
expected = json.loads(sys.argv[2])
print("table", path)
failures = []


def check(reader, what, got, want):
    ok = got == want
    print(f"  {reader}: {what} = {got!r}" + ("" if ok else f"  MISMATCH, expected {want!r}"))
    if not ok:
        failures.append(f"{reader}: {what}")


def check_rows(reader, ids, dates):
    check(reader, "rows", len(ids), expected["num_rows"])
    check(reader, "ids", sorted(ids), sorted(expected["ids"]))
    check(reader, "removed ids present", sorted(set(ids) & set(expected["removed_ids"])), [])
    check(reader, "rows per export_date", dict(sorted(collections.Counter(dates).items())),
          expected["partitions"])


# ---- 1. deltalake (delta-rs)
dt = deltalake.DeltaTable(path)
protocol = dt.protocol()
print(f"deltalake {deltalake.__version__}")
check("deltalake", "version", dt.version(), expected["version"])
check("deltalake", "protocol", (protocol.min_reader_version, protocol.min_writer_version), (1, 2))
check("deltalake", "partition columns", dt.metadata().partition_columns, ["export_date"])
check("deltalake", f"transaction_version({expected['app_id']})",
      dt.transaction_version(expected["app_id"]), expected["txn_version"])
adds = pl.DataFrame(dt.get_add_actions(flatten=True))
# delta-rs lists a column per schema field; ours must be among them, parsed.
wanted = [f"{kind}.{col}" for kind in ("min", "max", "null_count")
          for col in ("id", "meta.lastUpdated", "meta.lastUpdated_ts")]
check("deltalake", "stats columns missing", [c for c in wanted if c not in adds.columns], [])
check("deltalake", "max(max.meta.lastUpdated_ts)",
      str(adds["max.meta.lastUpdated_ts"].max()), "2026-01-02 03:04:06.123000+00:00")
table = dt.to_pyarrow_table()
check_rows("deltalake", table.column("id").to_pylist(), table.column("export_date").to_pylist())

# ---- 2. polars (no filter: polars mis-handles pushdown on struct fields with partial stats)
df = pl.read_delta(path)
print(f"polars {pl.__version__}")
check_rows("polars", df["id"].to_list(), [str(d) for d in df["export_date"].to_list()])
lu = df.select(pl.col("meta").struct.field("lastUpdated_ts")).to_series()
check("polars", "meta.lastUpdated_ts time zone", str(lu.dtype.time_zone), "UTC")

# ---- 3. DuckDB + delta extension loaded by path
spec = importlib.util.find_spec("duckdb_extension_delta")
ext = next(pathlib.Path(spec.submodule_search_locations[0]).glob("extensions/*/delta.duckdb_extension"))
con = duckdb.connect()
con.execute(f"LOAD '{ext}'")
con.execute("SET TimeZone = 'UTC'")
print(f"duckdb {duckdb.__version__}")
rows = con.sql(f"SELECT id, export_date::VARCHAR, meta.lastUpdated_ts::VARCHAR FROM delta_scan('{path}')").fetchall()
check_rows("duckdb", [r[0] for r in rows], [r[1] for r in rows])
first = con.sql(f"SELECT meta.lastUpdated_ts::VARCHAR FROM delta_scan('{path}') WHERE id = 'p1'").fetchone()
check("duckdb", "meta.lastUpdated_ts of p1", first[0], "2026-01-02 03:04:05.123456+00")

if failures:
    print("FAILED:", ", ".join(failures))
    sys.exit(1)
print("all three readers agree")
