#!/usr/bin/env python3
"""Independent reader check: the Delta tables of a warehouse read by three engines that
share no code with ours: the Python `deltalake` package (delta-rs), polars `read_delta`,
and DuckDB's `delta_scan` (DuckDB 1.5.5 with the duckdb-extension-delta wheel, loaded by
path; over S3 with the duckdb-extension-httpfs wheel, over Azure with
duckdb-extension-azure).

usage: reader_check.py WAREHOUSE INPUT_DIR...

WAREHOUSE is a directory, s3://bucket/prefix (endpoint and credentials from
AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) or
az://container/prefix (AZURE_STORAGE_CONNECTION_STRING; Azurite when
AZURE_STORAGE_USE_EMULATOR is true, at AZURITE_BLOB_STORAGE_URL).

Checks, for every resource type of the input:
- history/<Type>: the three readers agree, and the rows equal the input's non-blank
  lines of the type (when the runs rejected nothing);
- current/<Type>: the three readers agree, and the rows equal the distinct ids of the
  type in the input (one row per resource), with no id twice;
- views/<name>: the three readers agree; the example views (one row per resource)
  have as many rows as their resource's current table;
then typical analyst queries run in DuckDB on typed columns of the current tables.
Exits non-zero on any mismatch.
"""
import collections
import glob
import gzip
import importlib.util
import json
import os
import pathlib
import sys

import deltalake
import duckdb
import polars as pl

ONE_ROW_PER_RESOURCE = {"patient_demographics": "Patient", "condition_onsets": "Condition"}


def scheme_of(warehouse):
    """`local`, `s3` or `az`."""
    for scheme in ("s3", "az"):
        if warehouse.startswith(f"{scheme}://"):
            return scheme
    return "local"


def storage_options(scheme):
    """deltalake/polars options for the store, from the environment."""
    if scheme == "local":
        return None
    if scheme == "az":
        # delta-rs takes the emulator's address from AZURITE_BLOB_STORAGE_URL.
        if os.environ.get("AZURE_STORAGE_USE_EMULATOR") == "true":
            return {"use_emulator": "true"}
        return {"connection_string": os.environ["AZURE_STORAGE_CONNECTION_STRING"]}
    return {
        "AWS_ENDPOINT_URL": os.environ.get("AWS_ENDPOINT_URL", ""),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    }


def extension(name):
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    root = pathlib.Path(spec.submodule_search_locations[0])
    return next(root.glob(f"extensions/*/{name}.duckdb_extension"))


def duckdb_connection(scheme):
    con = duckdb.connect()
    con.execute(f"LOAD '{extension('delta')}'")
    con.execute("SET TimeZone = 'UTC'")
    if scheme == "az":
        con.execute(f"LOAD '{extension('azure')}'")
        con.execute(f"""CREATE SECRET (TYPE azure,
            CONNECTION_STRING '{os.environ["AZURE_STORAGE_CONNECTION_STRING"]}')""")
    if scheme == "s3":
        con.execute(f"LOAD '{extension('httpfs')}'")
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        con.execute(f"""CREATE SECRET (TYPE s3, KEY_ID '{os.environ["AWS_ACCESS_KEY_ID"]}',
            SECRET '{os.environ["AWS_SECRET_ACCESS_KEY"]}', REGION '{os.environ.get("AWS_REGION", "us-east-1")}',
            ENDPOINT '{endpoint.split("://", 1)[-1]}', URL_STYLE 'path',
            USE_SSL {'false' if endpoint.startswith('http://') else 'true'})""")
    return con


def list_tables(warehouse, scheme):
    """Delta tables under history/, current/ and views/."""
    if scheme == "local":
        root = pathlib.Path(warehouse)
        return sorted(str(p.parent.relative_to(root)) for p in root.glob("*/*/_delta_log"))
    if scheme == "az":
        return list_azure_tables(warehouse)
    import pyarrow.fs as pafs
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    fs = pafs.S3FileSystem(endpoint_override=endpoint.split("://", 1)[-1],
                           scheme="http" if endpoint.startswith("http://") else "https",
                           access_key=os.environ["AWS_ACCESS_KEY_ID"],
                           secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                           region=os.environ.get("AWS_REGION", "us-east-1"))
    base = warehouse[len("s3://"):].rstrip("/")
    tables = []
    for kind in ("history", "current", "views"):
        infos = fs.get_file_info(pafs.FileSelector(f"{base}/{kind}", allow_not_found=True))
        for info in infos:
            if info.type == pafs.FileType.Directory:
                tables.append(info.path[len(base) + 1:])
    return sorted(tables)


def list_azure_tables(warehouse):
    from azure.storage.blob import BlobPrefix, ContainerClient
    container, _, prefix = warehouse[len("az://"):].partition("/")
    client = ContainerClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"], container)
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    tables = []
    for kind in ("history", "current", "views"):
        for item in client.walk_blobs(name_starts_with=f"{base}{kind}/", delimiter="/"):
            if isinstance(item, BlobPrefix):
                tables.append(item.name[len(base):].rstrip("/"))
    return sorted(tables)


def input_counts(dirs):
    """Lines and distinct ids per resource type."""
    lines, ids = collections.Counter(), collections.defaultdict(set)
    for d in dirs:
        for path in sorted(glob.glob(os.path.join(d, "*.ndjson*"))):
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        r = json.loads(line)
                        lines[r["resourceType"]] += 1
                        ids[r["resourceType"]].add(r.get("id"))
    return lines, {t: len(v) for t, v in ids.items()}


def main():
    warehouse, dirs = sys.argv[1].rstrip("/"), sys.argv[2:]
    scheme = scheme_of(warehouse)
    if scheme == "local":
        warehouse = os.path.abspath(warehouse)
    options = storage_options(scheme)
    lines, distinct = input_counts(dirs)
    con = duckdb_connection(scheme)
    failures, counts = [], {}
    tables = list_tables(warehouse, scheme)
    for table in tables:
        uri = f"{warehouse}/{table}"
        dt = deltalake.DeltaTable(uri, storage_options=options)
        arrow = dt.to_pyarrow_table()
        by_deltalake = arrow.num_rows
        by_polars = pl.read_delta(uri, storage_options=options).height
        by_duckdb = con.execute(f"SELECT count(*) FROM delta_scan('{uri}')").fetchone()[0]
        counts[table] = by_deltalake
        kind, name = table.split("/", 1)
        if kind == "history":
            tombstones = sum(arrow.column("_lineage").combine_chunks().field("deleted").to_pylist())
            want = lines.get(name)
            got = by_deltalake - tombstones
        elif kind == "current":
            want, got = distinct.get(name), by_deltalake
            ids = arrow.column("id").to_pylist()
            if len(ids) != len(set(ids)):
                failures.append(f"{table}: an id twice")
        else:
            want, got = None, by_deltalake
        agree = by_deltalake == by_polars == by_duckdb
        ok = agree and (want is None or got == want or not lines)
        print(f"{'ok ' if ok else 'BAD'} {table:<36} v{dt.version():<3} deltalake {by_deltalake:>7}"
              f"  polars {by_polars:>7}  duckdb {by_duckdb:>7}  expected {want if want is not None else '-'}")
        if not ok:
            failures.append(table)
    for view, resource in ONE_ROW_PER_RESOURCE.items():
        table = f"views/{view}"
        if table in counts and counts[table] != counts.get(f"current/{resource}"):
            failures.append(f"{table}: {counts[table]} rows, current/{resource} has "
                            f"{counts.get(f'current/{resource}')}")
    for resource in lines:
        for kind in ("history", "current"):
            if f"{kind}/{resource}" not in counts:
                failures.append(f"{kind}/{resource}: no Delta table")
    queries(con, warehouse, tables)
    if failures:
        print("reader check FAILED:", failures)
        sys.exit(1)
    print(f"reader check passed: {len(tables)} Delta tables, three readers agree")


def queries(con, warehouse, tables):
    """Typical analyst queries on typed columns; they must run and find rows."""
    def scan(t):
        return f"delta_scan('{warehouse}/current/{t}')"
    checks = []
    if "current/Observation" in tables:
        for code in ("8867-4", "29463-7"):  # heart rate, body weight
            checks.append((f"Observation with code {code} and valueQuantity.value > 100",
                f"SELECT count(*) FROM {scan('Observation')} WHERE list_contains([c.code FOR c IN code.coding], '{code}') AND valueQuantity.value > 100"))
        checks.append(("Observation decimals keep their text",
            f"SELECT count(*) FROM {scan('Observation')} WHERE valueQuantity.value_text IS NOT NULL AND CAST(valueQuantity.value_text AS DOUBLE) = valueQuantity.value"))
    if "current/Patient" in tables:
        checks.append(("Patients by birthDate and gender",
            f"SELECT count(*) FROM {scan('Patient')} WHERE birthDate_ts < TIMESTAMP '2000-01-01' AND gender IN ('male', 'female')"))
    if "current/Encounter" in tables:
        checks.append(("Encounters by period.start range",
            f"SELECT count(*) FROM {scan('Encounter')} WHERE period.start_ts BETWEEN TIMESTAMP '1900-01-01' AND TIMESTAMP '2100-01-01'"))
    if "views/patient_demographics" in tables:
        checks.append(("the patient view joined to conditions by patient",
            f"SELECT count(*) FROM delta_scan('{warehouse}/views/patient_demographics') p "
            f"JOIN delta_scan('{warehouse}/views/condition_onsets') c ON c.patient_id = p.id"))
    found = 0
    for name, sql in checks:
        n = con.execute(sql).fetchone()[0]
        found += n > 0
        print(f"query: {name}: {n} rows")
    if checks and found < len(checks) - 1:
        print("reader check FAILED: typed-column queries found no rows")
        sys.exit(1)


if __name__ == "__main__":
    main()
