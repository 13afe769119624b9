"""Typical analyst queries in DuckDB over our Parquet and over pyarrow's, side by side.

usage: python benches/queries.py OURS_WAREHOUSE PYARROW_DIR [--reps N]

OURS_WAREHOUSE is what `fhir-ingest convert INPUT --out OURS_WAREHOUSE` wrote (the
history tables' Parquet files are read directly, as a plain-Parquet reader would);
PYARROW_DIR holds `<Type>.parquet` as `pq.write_table(pj.read_json(f))` writes them
(what `../shared/tools/bench-peers` does). Every query runs on a fresh connection
(cold metadata, warm OS cache), once to warm up and then N times; the median wall time
of each side and the ratio ours/pyarrow are printed, with the two answers compared.
"""

import statistics
import sys
import time

import duckdb

# Each query is written once, over the views `obs`, `pat` and `cond`; the columns used
# mean the same in both layouts (the original strings, not our `_ts` companions, which
# pyarrow does not have).
QUERIES = {
    "body weight > 100 kg": """
        SELECT count(*) FROM obs
        WHERE list_contains([c.code FOR c IN code.coding], '29463-7')
          AND valueQuantity.value > 100""",
    "conditions by onset year": """
        SELECT year(CAST(onsetDateTime AS TIMESTAMPTZ)) AS y, count(*) FROM cond
        GROUP BY y ORDER BY y""",
    "observation codes (unnest, group by)": """
        SELECT c.code, count(*) AS n FROM (SELECT unnest(code.coding) AS c FROM obs)
        GROUP BY c.code ORDER BY n DESC, c.code LIMIT 20""",
    "observations per patient gender (join)": """
        SELECT p.gender, count(*) FROM obs o
        JOIN pat p ON o.subject.reference = 'Patient/' || p.id
        GROUP BY p.gender ORDER BY p.gender""",
    "patients born since 1980 by gender": """
        SELECT gender, count(*) FROM pat
        WHERE CAST(birthDate AS DATE) >= DATE '1980-01-01'
        GROUP BY gender ORDER BY gender""",
    "one patient by id": """
        SELECT id, gender, CAST(birthDate AS DATE) FROM pat
        WHERE id = (SELECT max(id) FROM pat)""",
    "observations of one patient": """
        SELECT count(*) FROM obs
        WHERE subject.reference = (SELECT 'Patient/' || min(id) FROM pat)""",
}


def views(layout, root):
    if layout == "ours":
        path = lambda t: f"{root}/history/{t}/**/*.parquet"  # noqa: E731
    else:
        path = lambda t: f"{root}/{t}.parquet"  # noqa: E731
    return {
        "obs": path("Observation"),
        "pat": path("Patient"),
        "cond": path("Condition"),
    }


def run(layout, root, sql):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    for name, path in views(layout, root).items():
        # Our files hold only the leaves with a value: files of one table differ.
        union = ", union_by_name = true" if layout == "ours" else ""
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}'{union})")
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return time.perf_counter() - started, rows


def main():
    args = sys.argv[1:]
    reps = 5
    if "--reps" in args:
        i = args.index("--reps")
        reps = int(args[i + 1])
        del args[i : i + 2]
    ours, theirs = args
    print(f"{'query':42} {'ours ms':>9} {'pyarrow ms':>11} {'ratio':>6}  same answer")
    ratios = []
    for name, sql in QUERIES.items():
        medians = {}
        answers = {}
        for layout, root in (("ours", ours), ("pyarrow", theirs)):
            run(layout, root, sql)  # warm-up
            times = []
            for _ in range(reps):
                elapsed, answers[layout] = run(layout, root, sql)
                times.append(elapsed)
            medians[layout] = statistics.median(times) * 1000
        ratio = medians["ours"] / medians["pyarrow"]
        ratios.append(ratio)
        same = "yes" if answers["ours"] == answers["pyarrow"] else "NO"
        print(f"{name:42} {medians['ours']:9.1f} {medians['pyarrow']:11.1f} {ratio:6.2f}  {same}")
    print(f"{'geometric mean of ratios':42} {'':9} {'':11} {statistics.geometric_mean(ratios):6.2f}")


if __name__ == "__main__":
    main()
