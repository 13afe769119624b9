#!/usr/bin/env python3
"""Independent round-trip check: NDJSON rebuilt by `fhir-ingest to-ndjson` equals the
input, resource for resource, as JSON values with numbers compared by their text.

usage: roundtrip_check.py REBUILT_DIR INPUT_DIR...

Resources are compared as multisets per resource type (the warehouse does not keep
the input's order), after parsing with Python's json module, so this check shares no
code with the Rust side.
"""
import collections, glob, gzip, json, os, sys


def canonical(line):
    value = json.loads(line, parse_float=lambda s: ["#number", s], parse_int=lambda s: ["#number", s])
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def read(paths):
    by_type = collections.defaultdict(collections.Counter)
    for path in paths:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    by_type[json.loads(line)["resourceType"]][canonical(line)] += 1
    return by_type


def main():
    rebuilt_dir, input_dirs = sys.argv[1], sys.argv[2:]
    inputs = read(sorted(p for d in input_dirs for p in glob.glob(os.path.join(d, "*.ndjson*"))))
    rebuilt = read(sorted(glob.glob(os.path.join(rebuilt_dir, "*.ndjson"))))
    differences = 0
    for resource_type in sorted(set(inputs) | set(rebuilt)):
        missing = inputs[resource_type] - rebuilt[resource_type]
        extra = rebuilt[resource_type] - inputs[resource_type]
        n = sum(inputs[resource_type].values())
        status = "ok " if not missing and not extra else "BAD"
        print(f"{status} {resource_type:<28} {n:>8} resources, {sum(missing.values())} missing, {sum(extra.values())} different")
        for text in list(missing)[:1]:
            print("   input:  ", text[:400])
        for text in list(extra)[:1]:
            print("   rebuilt:", text[:400])
        differences += sum(missing.values()) + sum(extra.values())
    total = sum(sum(c.values()) for c in inputs.values())
    print(f"{total} resources compared, {differences} differences")
    sys.exit(1 if differences or total == 0 else 0)


if __name__ == "__main__":
    main()
