#!/usr/bin/env python3
"""Independent reader check: pyarrow and DuckDB read every table of a warehouse.

usage: reader_check.py WAREHOUSE INPUT_DIR...

WAREHOUSE is a directory or s3://bucket/prefix (endpoint and credentials from
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).

The files read follow the reader's rule of docs/commit-protocol.md: the files listed by
the committed manifests `_runs/*.json`, minus the files listed in their `replaces`.
For each resource type, the rows in those files (read by pyarrow, and counted again by
DuckDB: from the files when local, from pyarrow's tables when on S3) must equal the
input's non-blank lines of that type minus the lines the run manifests say were
rejected. Then a few analyst queries run on typed columns. Exits non-zero on any mismatch.
"""
import collections, glob, gzip, json, os, sys  # noqa: E401

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def open_warehouse(warehouse):
    """(filesystem, root) of a local directory or an s3:// URL."""
    if not warehouse.startswith("s3://"):
        return pafs.LocalFileSystem(), os.path.abspath(warehouse)
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    scheme = "http" if endpoint.startswith("http://") else "https"
    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[-1] or None, scheme=scheme,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"), secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        region=os.environ.get("AWS_REGION", "us-east-1"))
    return s3, warehouse[len("s3://"):].rstrip("/")


def committed_files(fs, root):
    """The reader's rule: runs, and per table the files of committed runs not replaced."""
    infos = fs.get_file_info(pafs.FileSelector(root + "/_runs", allow_not_found=True))
    runs = []
    for info in sorted(infos, key=lambda i: i.path):
        if info.path.endswith(".json"):
            with fs.open_input_stream(info.path) as f:
                runs.append(json.loads(f.read()))
    replaced = {p for run in runs for p in run.get("replaces", [])}
    files = collections.defaultdict(list)
    for run in runs:
        for table, t in run["tables"].items():
            files[table] += [root + "/" + f["path"] for f in t["files"] if f["path"] not in replaced]
    return runs, files


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


def duckdb_recipe_count(con, root, table):
    """Rows of `table` read by the DuckDB recipe of docs/commit-protocol.md (SQL only)."""
    con.execute(f"""
        SET VARIABLE committed_files = (
          WITH manifests AS (SELECT content::JSON AS m FROM read_text('{root}/_runs/*.json')),
          listed   AS (SELECT unnest(json_extract_string(m, '$.tables.{table}.files[*].path')) AS path FROM manifests),
          replaced AS (SELECT unnest(json_extract_string(m, '$.replaces[*]')) AS path FROM manifests)
          SELECT list('{root}/' || path ORDER BY path) FROM listed
          WHERE path NOT IN (SELECT path FROM replaced)
        )""").fetchall()
    return con.execute(
        "SELECT count(*) FROM read_parquet(getvariable('committed_files'), hive_partitioning = true)"
    ).fetchall()[0][0]


def main():
    warehouse, dirs = sys.argv[1], sys.argv[2:]
    expected = input_counts(dirs)
    fs, root = open_warehouse(warehouse)
    local = isinstance(fs, pafs.LocalFileSystem)
    runs, files = committed_files(fs, root)
    rejected = sum(r["rejected"]["lines"] for r in runs)
    failures = []
    con = duckdb.connect()
    arrow_tables = {}
    total = 0
    for table in sorted(set(expected) | set(files)):
        paths = files.get(table, [])
        arrow_rows = sum(pq.ParquetFile(fs.open_input_file(p)).metadata.num_rows for p in paths)
        # pyarrow reads every column of every file (not just the footer).
        tables = [pq.read_table(p, filesystem=fs) for p in paths]
        read_rows = sum(t.num_rows for t in tables)
        if not paths:
            duck_rows = 0
        elif local:
            # DuckDB picks the files itself, by the recipe of docs/commit-protocol.md.
            duck_rows = duckdb_recipe_count(con, root, table)
        else:
            arrow_tables[table] = pa.concat_tables(tables)
            con.register(f"t_{table}", arrow_tables[table])
            duck_rows = con.execute(f"SELECT count(*) FROM t_{table}").fetchall()[0][0]
        total += read_rows
        ok = arrow_rows == read_rows == duck_rows and (rejected > 0 or read_rows == expected[table])
        print(f"{'ok ' if ok else 'BAD'} {table:<28} input {expected[table]:>8}  pyarrow {read_rows:>8}  duckdb {duck_rows:>8}")
        if not ok:
            failures.append(table)
    if total != sum(expected.values()) - rejected:
        failures.append(f"total rows {total} != input {sum(expected.values())} - rejected {rejected}")
    print(f"rows {total}, input lines {sum(expected.values())}, rejected {rejected}")
    queries(con, files, local)
    if failures:
        print("reader check FAILED:", failures)
        sys.exit(1)
    print("reader check passed")


def queries(con, files, local):
    """Typical analyst queries on typed columns; they must run and find rows."""
    def scan(t):
        if not local:
            return f"t_{t}"
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
        n = con.execute(sql).fetchall()[0][0]
        found += n > 0
        print(f"query: {name}: {n} rows")
    # Each query runs (typed columns exist with the right types); on a data set with
    # these tables, most must find rows.
    if checks and found < len(checks) - 1:
        print("reader check FAILED: typed-column queries found no rows")
        sys.exit(1)


if __name__ == "__main__":
    main()
