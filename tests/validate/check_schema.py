#!/usr/bin/env python3
"""Checks configs/weir.schema.json with an independent validator: the schema is
valid JSON Schema 2020-12, every shipped example (and the semantics examples,
when present) passes it, and configs with plain type or enum errors fail it.
Exits 77 (skipped) when python3-jsonschema is not installed."""
import glob
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is not installed; skipping")
    sys.exit(77)

root = sys.argv[1]
schema = json.load(open(os.path.join(root, "configs/weir.schema.json")))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

failures = 0
good = glob.glob(os.path.join(root, "configs/examples/*.json"))
good += glob.glob(os.path.join(root, "../shared/examples/semantics/*/config.json"))
for path in good:
    errors = [e.message for e in validator.iter_errors(json.load(open(path)))]
    if errors:
        print(f"FAIL: {path} does not match the schema: {errors[:3]}")
        failures += 1

# Errors a schema can express; semantic ones (client ids, names) are weir validate's alone.
for name in ["bad_duration", "bad_enum", "bad_name", "empty_pipelines", "missing_window",
             "quantile_q", "unknown_key", "wrong_type", "many_errors"]:
    path = os.path.join(root, "tests/validate", name + ".json")
    if not list(validator.iter_errors(json.load(open(path)))):
        print(f"FAIL: {path} passes the schema but is broken")
        failures += 1

print(f"{len(good)} valid configs checked, {failures} failure(s)")
sys.exit(1 if failures else 0)
