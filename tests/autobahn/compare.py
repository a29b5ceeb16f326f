#!/usr/bin/env python3
"""Compare an Autobahn testsuite report with the checked-in expected results.

The Autobahn report (reports/<role>/index.json) looks like
    {agent: {case_id: {"behavior", "behaviorClose", "duration",
                       "remoteCloseCode", "reportfile"}}}
Durations and close codes change from run to run, so only "behavior" and
"behaviorClose" are compared with expected-results.json, which looks like
    {"server": {case_id: {"behavior": "OK", "behaviorClose": "OK"}},
     "client": {...}}

Usage:
    compare.py --role server --report reports/server/index.json \
               --expected expected-results.json [--subset] [--write]
    compare.py --self-test

--subset  only the cases present in the report are checked (for runs with a
          reduced case list, AUTOBAHN_CASES); missing cases are not failures.
--write   (maintainers) rewrite that role's section of the expected file from
          the report instead of comparing; with --subset only the cases in
          the report are replaced, the rest of the section is kept.

Exit status: 0 if everything matches, 1 on any difference, 2 on bad input.
Standard library only, so it runs with any Python 3.
"""

import argparse
import json
import os
import re
import sys
import tempfile

FIELDS = ("behavior", "behaviorClose")


def case_key(case_id):
    """Sort "1.1.10" after "1.1.9": compare dotted ids numerically."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.]", case_id))


def die(msg):
    """Bad input (not a test failure): message and exit status 2."""
    print("compare.py: " + msg, file=sys.stderr)
    sys.exit(2)


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        die("%s not found: %s" % (what, path))
    except json.JSONDecodeError as e:
        die("%s is not valid JSON (%s): %s" % (what, e, path))


def load_report(path, agent):
    """Return ({case_id: {behavior, behaviorClose}}, {case_id: reportfile})."""
    index = load_json(path, "report")
    if not isinstance(index, dict) or not index:
        die("report has no agents: %s" % path)
    if agent is None:
        if len(index) != 1:
            die("report has several agents %s; pass --agent" % sorted(index))
        agent = next(iter(index))
    if agent not in index:
        die("agent %r not in report (agents: %s)" % (agent, sorted(index)))
    results, files = {}, {}
    for case_id, entry in index[agent].items():
        results[case_id] = {k: entry.get(k) for k in FIELDS}
        files[case_id] = entry.get("reportfile")
    return results, files


def case_result_text(report_dir, reportfile):
    """The human-readable "result" line of one case's own report file."""
    if not reportfile:
        return "(no report file)"
    path = os.path.join(report_dir, reportfile)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("result", "(no 'result' field)")
    except (OSError, ValueError) as e:
        return "(cannot read %s: %s)" % (path, e)


def compare(role, actual, files, expected, report_dir, subset, out=sys.stdout):
    """Print differences and a summary; return the number of differing cases."""
    if subset:
        case_ids = set(actual)
    else:
        case_ids = set(actual) | set(expected)
    differ = 0
    for case_id in sorted(case_ids, key=case_key):
        exp = expected.get(case_id)
        act = actual.get(case_id)
        if exp is not None and act is not None and all(
            exp.get(k) == act.get(k) for k in FIELDS
        ):
            continue
        differ += 1
        if act is None:
            print("FAIL %s: missing from report (expected %s)" % (case_id, fmt(exp)), file=out)
            continue
        if exp is None:
            print("FAIL %s: not in expected results (actual %s)" % (case_id, fmt(act)), file=out)
        else:
            print("FAIL %s: expected %s, actual %s" % (case_id, fmt(exp), fmt(act)), file=out)
        print("     result: %s" % case_result_text(report_dir, files.get(case_id)), file=out)
    total = len(case_ids)
    print(
        "autobahn %s: %d cases, %d as expected, %d differ%s"
        % (role, total, total - differ, differ, " (subset)" if subset else ""),
        file=out,
    )
    return differ


def fmt(entry):
    return "behavior=%s behaviorClose=%s" % (entry.get("behavior"), entry.get("behaviorClose"))


def write_expected(path, role, actual, subset, out=sys.stdout):
    """Regenerate one role's section of the expected file, keeping the other."""
    data = {}
    if os.path.exists(path):
        data = load_json(path, "expected results")
    section = dict(data.get(role, {})) if subset else {}
    section.update(actual)
    data[role] = {k: section[k] for k in sorted(section, key=case_key)}
    # Keep "client" and "server" in a stable order so diffs stay small.
    ordered = {k: data[k] for k in sorted(data)}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ordered, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    print("wrote %d %s cases to %s" % (len(data[role]), role, path), file=out)


def run(argv, out=sys.stdout):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=("server", "client"))
    ap.add_argument("--report", help="path to the report's index.json")
    ap.add_argument("--expected", help="path to expected-results.json")
    ap.add_argument("--agent", help="agent name in the report (default: the only one)")
    ap.add_argument("--subset", action="store_true", help="only check cases that ran")
    ap.add_argument("--write", action="store_true", help="regenerate expected results")
    ap.add_argument("--self-test", action="store_true", help="test this script")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    if not (args.role and args.report and args.expected):
        ap.error("--role, --report and --expected are required")

    actual, files = load_report(args.report, args.agent)
    if args.write:
        write_expected(args.expected, args.role, actual, args.subset, out)
        return 0
    expected = {}
    if os.path.exists(args.expected):
        expected = load_json(args.expected, "expected results").get(args.role, {})
    if not expected:
        # Nothing to compare with: one line instead of a FAIL per case.
        print("no expected %s results in %s; create them with --write "
              "(run.sh: AUTOBAHN_WRITE=1)" % (args.role, args.expected), file=out)
        print("autobahn %s: %d cases, 0 as expected, %d differ"
              % (args.role, len(actual), len(actual)), file=out)
        return 1
    differ = compare(args.role, actual, files, expected,
                     os.path.dirname(os.path.abspath(args.report)), args.subset, out)
    return 1 if differ else 0


# --------------------------------------------------------------------------
# Self-test: fabricate a small report on disk and check each outcome.

def self_test():
    import io

    def make_report(d, cases):
        index = {"edgews": {}}
        for case_id, (beh, close) in cases.items():
            rf = "edgews_case_%s.json" % case_id.replace(".", "_")
            index["edgews"][case_id] = {
                "behavior": beh, "behaviorClose": close, "duration": 3,
                "remoteCloseCode": 1000, "reportfile": rf,
            }
            with open(os.path.join(d, rf), "w") as f:
                json.dump({"result": "result text of %s" % case_id}, f)
        path = os.path.join(d, "index.json")
        with open(path, "w") as f:
            json.dump(index, f)
        return path

    checks = []

    def check(name, cond):
        checks.append((name, bool(cond)))
        print("%s %s" % ("ok" if cond else "FAIL", name))

    with tempfile.TemporaryDirectory() as d:
        good = {"1.1.1": ("OK", "OK"), "1.1.10": ("OK", "OK"),
                "1.1.9": ("OK", "OK"), "7.1.6": ("INFORMATIONAL", "INFORMATIONAL")}
        report = make_report(d, good)
        exp = os.path.join(d, "expected.json")

        def call(*extra):
            buf = io.StringIO()
            rc = run(["--role", "server", "--report", report, "--expected", exp] + list(extra), buf)
            return rc, buf.getvalue()

        rc, text = call("--write")
        data = json.load(open(exp))
        check("write creates section", rc == 0 and set(data["server"]) == set(good))
        check("write sorts numerically", list(data["server"]) == ["1.1.1", "1.1.9", "1.1.10", "7.1.6"])
        check("write keeps only behavior fields", data["server"]["1.1.1"] == {"behavior": "OK", "behaviorClose": "OK"})

        rc, text = call()
        check("identical report passes", rc == 0 and "4 cases, 4 as expected, 0 differ" in text)

        # Different behavior: fails and shows the case's own result text.
        make_report(d, dict(good, **{"1.1.9": ("FAILED", "OK")}))
        rc, text = call()
        check("changed behavior fails", rc == 1 and "FAIL 1.1.9: expected" in text)
        check("result text is shown", "result text of 1.1.9" in text)
        check("summary counts the difference", "4 cases, 3 as expected, 1 differ" in text)

        # Missing case: a failure, except in subset mode.
        less = dict(good)
        del less["1.1.10"]
        make_report(d, less)
        rc, text = call()
        check("missing case fails", rc == 1 and "FAIL 1.1.10: missing" in text)
        rc, text = call("--subset")
        check("missing case ok with --subset", rc == 0 and "3 cases, 3 as expected" in text)

        # Extra case: always a failure.
        make_report(d, dict(good, **{"2.1": ("OK", "OK")}))
        rc, text = call("--subset")
        check("extra case fails", rc == 1 and "FAIL 2.1: not in expected" in text)

        # No expected section for the role: fails with a hint, no per-case noise.
        buf = io.StringIO()
        rc = run(["--role", "client", "--report", report, "--expected", exp], buf)
        check("missing section fails with hint", rc == 1 and "--write" in buf.getvalue()
              and "FAIL" not in buf.getvalue())

        # --write --subset merges into the section, other role untouched.
        make_report(d, {"1.1.1": ("NON-STRICT", "OK")})
        rc, _ = call("--write", "--subset")
        data = json.load(open(exp))
        check("subset write merges", rc == 0 and len(data["server"]) == 4
              and data["server"]["1.1.1"]["behavior"] == "NON-STRICT")
        buf = io.StringIO()
        run(["--role", "client", "--report", report, "--expected", exp, "--write"], buf)
        data = json.load(open(exp))
        check("roles are independent", len(data["server"]) == 4 and len(data["client"]) == 1)

    failed = sum(1 for _, ok in checks if not ok)
    print("compare.py self-test: %d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
