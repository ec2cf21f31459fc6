#!/usr/bin/env python3
"""The comparator must fail where DESIGN 5.7 says results differ."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = {"id": "gw/p/d1/0", "rev": 0, "pipeline": "p", "key": {"device": "d1"},
        "start": 0, "end": 60000, "count": 2, "values": {"n": 2, "avg": 21.5, "q": 10.0}}
CONFIG = {"pipelines": [{"name": "p", "aggregates": {"n": {"count": "*"}, "avg": {"avg": "t"},
                                                     "q": {"quantile": "t", "q": 0.5}}}]}


def with_(**kw):
    r = json.loads(json.dumps(BASE))
    for k, v in kw.items():
        if k.startswith("v_"):
            r["values"][k[2:]] = v
        else:
            r[k] = v
    return r


class CompareTest(unittest.TestCase):
    def run_compare(self, expected, actual):
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for name, rows in (("e", expected), ("a", actual), ("c", None)):
                p = os.path.join(d, name)
                with open(p, "w") as f:
                    if rows is None:
                        json.dump(CONFIG, f)
                    else:
                        f.writelines(json.dumps(r) + "\n" for r in rows)
                paths.append(p)
            return subprocess.run([sys.executable, os.path.join(HERE, "compare_results.py"),
                                   paths[0], paths[1], "--config", paths[2]],
                                  capture_output=True).returncode

    def test_equal(self):
        self.assertEqual(self.run_compare([BASE], [BASE]), 0)

    def test_order_free_except_revisions(self):
        other = with_(id="gw/p/d2/0", key={"device": "d2"})
        self.assertEqual(self.run_compare([BASE, other], [other, BASE]), 0)
        r1 = with_(rev=1, count=3)
        self.assertEqual(self.run_compare([BASE, r1], [BASE, r1]), 0)
        self.assertEqual(self.run_compare([BASE, r1], [r1, BASE]), 1)

    def test_values_tolerance(self):
        self.assertEqual(self.run_compare([BASE], [with_(v_avg=21.5 + 1e-12)]), 0)
        self.assertEqual(self.run_compare([BASE], [with_(v_avg=21.50001)]), 1)
        self.assertEqual(self.run_compare([BASE], [with_(v_avg=None)]), 1)
        self.assertEqual(self.run_compare([BASE], [with_(v_q=10.09)]), 0)  # quantile: 1%
        self.assertEqual(self.run_compare([BASE], [with_(v_q=10.2)]), 1)

    def test_exact_fields(self):
        for kw in ({"count": 3}, {"start": 1}, {"key": {"device": "x"}}, {"rev": 1},
                   {"count": 2.0}, {"duration_ms": 5}):
            self.assertEqual(self.run_compare([BASE], [with_(**kw)]), 1, kw)

    def test_missing_and_extra(self):
        self.assertEqual(self.run_compare([BASE], []), 1)
        self.assertEqual(self.run_compare([], [BASE]), 1)
        self.assertEqual(self.run_compare([BASE], [BASE, BASE]), 1)


if __name__ == "__main__":
    unittest.main()
