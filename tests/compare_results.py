#!/usr/bin/env python3
"""Compares weir results (JSON Lines) with expected ones as DESIGN 5.7 says.

`values` match within 1e-9 (relative and absolute), a `quantile` value within
1% (relative) when --config names it; `id`, `rev`, `key`, `start`, `end`,
`count`, `duration_ms`, `retracted` and `pipeline` exactly; the same multiset
of results; order only as increasing revisions of each id in the actual file.

usage: compare_results.py EXPECTED ACTUAL [--config CONFIG]
Exit 0 when they match, 1 otherwise (with the differences on stdout).
"""
import argparse
import json
import math
import sys

EXACT = ("id", "rev", "retracted", "pipeline", "key", "start", "end", "count", "duration_ms")


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{n}: not JSON: {e}")
            if not isinstance(obj, dict):
                raise SystemExit(f"{path}:{n}: not a JSON object")
            rows.append((n, obj))
    return rows


def quantile_names(config_path):
    """pipeline name -> set of aggregate names that are quantiles."""
    if not config_path:
        return {}
    with open(config_path, encoding="utf-8") as f:
        cfg = json.load(f)
    out = {}
    for p in cfg.get("pipelines", []):
        out[p.get("name")] = {n for n, a in p.get("aggregates", {}).items()
                              if isinstance(a, dict) and "quantile" in a}
    return out


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def values_differ(exp, act, quantiles):
    if not isinstance(exp, dict) or not isinstance(act, dict):
        return "values is not an object"
    if set(exp) != set(act):
        return f"value names differ: expected {sorted(exp)}, got {sorted(act)}"
    for name, e in exp.items():
        a = act[name]
        if e is None or a is None:
            if e is not a:
                return f"{name}: expected {e}, got {a}"
            continue
        if not is_number(e) or not is_number(a):
            return f"{name}: expected {e!r}, got {a!r}"
        if name in quantiles:
            ok = math.isclose(a, e, rel_tol=0.01, abs_tol=1e-9)
        else:
            ok = math.isclose(a, e, rel_tol=1e-9, abs_tol=1e-9)
        if not ok:
            return f"{name}: expected {e}, got {a}"
    return None


def differs(exp, act, quantiles):
    keys_e = set(exp) - {"values"}
    keys_a = set(act) - {"values"}
    if keys_e != keys_a:
        return f"fields differ: expected {sorted(set(exp))}, got {sorted(set(act))}"
    for k in EXACT:
        if k in exp:
            e, a = exp[k], act[k]
            # Exact, and an integer field must not come back as 5.0 or true.
            if e != a or type(e) is not type(a):
                return f"{k}: expected {json.dumps(e)}, got {json.dumps(a)}"
    for k in keys_e - set(EXACT):
        if exp[k] != act[k]:
            return f"{k}: expected {json.dumps(exp[k])}, got {json.dumps(act[k])}"
    if "values" in exp or "values" in act:
        if ("values" in exp) != ("values" in act):
            return "values present in only one of them"
        return values_differ(exp["values"], act["values"], quantiles.get(exp.get("pipeline"), set()))
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("expected")
    ap.add_argument("actual")
    ap.add_argument("--config")
    args = ap.parse_args()
    expected = load(args.expected)
    actual = load(args.actual)
    quantiles = quantile_names(args.config)
    problems = []

    # Revisions of one id appear in increasing order.
    last_rev = {}
    for n, r in actual:
        rid, rev = r.get("id"), r.get("rev")
        if not isinstance(rid, str) or not isinstance(rev, int) or isinstance(rev, bool):
            problems.append(f"actual line {n}: needs a string id and an integer rev: {json.dumps(r)}")
            continue
        if rid in last_rev and rev <= last_rev[rid]:
            problems.append(f"actual line {n}: {rid} rev {rev} after rev {last_rev[rid]}")
        last_rev[rid] = max(rev, last_rev.get(rid, rev))

    # Same multiset: pair each expected result with an unused matching one.
    unused = list(actual)
    for n, e in expected:
        match = None
        closest = None
        for i, (m, a) in enumerate(unused):
            if a.get("id") != e.get("id") or a.get("rev") != e.get("rev"):
                continue
            why = differs(e, a, quantiles)
            if why is None:
                match = i
                break
            closest = closest or (m, why)
        if match is not None:
            del unused[match]
        elif closest:
            problems.append(f"expected line {n} ({e.get('id')} rev {e.get('rev')}): "
                            f"actual line {closest[0]} differs: {closest[1]}")
        else:
            problems.append(f"expected line {n} missing: {json.dumps(e)}")
    for m, a in unused:
        problems.append(f"actual line {m} not expected: {json.dumps(a)}")

    if problems:
        print(f"{len(problems)} difference(s) between {args.expected} and {args.actual}:")
        for p in problems:
            print("  " + p)
        return 1
    print(f"ok: {len(expected)} result(s) match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
