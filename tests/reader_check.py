#!/usr/bin/env python3
"""Independent reader check: pyarrow and DuckDB read every table of a warehouse.

usage: reader_check.py WAREHOUSE INPUT_DIR...

For each resource type, the rows in the committed Parquet files (read by pyarrow, and
counted again by DuckDB) must equal the input's non-blank lines of that type minus the
lines the run manifests say were rejected. Then a few analyst queries run on typed
columns. Exits non-zero on any mismatch.
"""
import collections, glob, gzip, json, os, sys

import duckdb
import pyarrow.parquet as pq


def input_counts(dirs):
    counts = collections.Counter()
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.ndjson*"))):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        counts[json.loads(line)["resourceType"]] += 1
    return counts


def main():
    warehouse, dirs = sys.argv[1], sys.argv[2:]
    expected = input_counts(dirs)
    runs = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(warehouse, "_runs", "*.json")))]
    rejected = sum(r["rejected"]["lines"] for r in runs)
    files = collections.defaultdict(list)
    for run in runs:
        for table, t in run["tables"].items():
            files[table] += [os.path.join(warehouse, f["path"]) for f in t["files"]]
    failures = []
    con = duckdb.connect()
    total = 0
    for table in sorted(set(expected) | set(files)):
        paths = files.get(table, [])
        arrow_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in paths)
        # pyarrow reads every column of every file (not just the footer).
        read_rows = sum(pq.read_table(p).num_rows for p in paths)
        duck_rows = con.execute("SELECT count(*) FROM read_parquet(?)", [paths]).fetchone()[0] if paths else 0
        total += read_rows
        ok = arrow_rows == read_rows == duck_rows and (rejected > 0 or read_rows == expected[table])
        print(f"{'ok ' if ok else 'BAD'} {table:<28} input {expected[table]:>8}  pyarrow {read_rows:>8}  duckdb {duck_rows:>8}")
        if not ok:
            failures.append(table)
    if total != sum(expected.values()) - rejected:
        failures.append(f"total rows {total} != input {sum(expected.values())} - rejected {rejected}")
    print(f"rows {total}, input lines {sum(expected.values())}, rejected {rejected}")
    queries(con, files)
    if failures:
        print("reader check FAILED:", failures)
        sys.exit(1)
    print("reader check passed")


def queries(con, files):
    """Typical analyst queries on typed columns; they must run and find rows."""
    def scan(t):
        return "read_parquet([" + ",".join(f"'{p}'" for p in files[t]) + "])"
    checks = []
    if "Observation" in files:
        for code in ("8867-4", "29463-7"):  # heart rate, body weight
            checks.append((f"Observation with code {code} and valueQuantity.value > 100",
                f"SELECT count(*) FROM {scan('Observation')} WHERE list_contains([c.code FOR c IN code.coding], '{code}') AND valueQuantity.value > 100"))
        checks.append(("Observation decimals keep their text",
            f"SELECT count(*) FROM {scan('Observation')} WHERE valueQuantity.value_text IS NOT NULL AND CAST(valueQuantity.value_text AS DOUBLE) = valueQuantity.value"))
    if "Patient" in files:
        checks.append(("Patients by birthDate and gender",
            f"SELECT count(*) FROM {scan('Patient')} WHERE birthDate_ts < TIMESTAMP '2000-01-01' AND gender IN ('male', 'female')"))
    if "Encounter" in files:
        checks.append(("Encounters by period.start range",
            f"SELECT count(*) FROM {scan('Encounter')} WHERE period.start_ts BETWEEN TIMESTAMP '1900-01-01' AND TIMESTAMP '2100-01-01'"))
    found = 0
    for name, sql in checks:
        n = con.execute(sql).fetchone()[0]
        found += n > 0
        print(f"query: {name}: {n} rows")
    # Each query runs (typed columns exist with the right types); on a data set with
    # these tables, most must find rows.
    if checks and found < len(checks) - 1:
        print("reader check FAILED: typed-column queries found no rows")
        sys.exit(1)


if __name__ == "__main__":
    main()
