#!/usr/bin/env python3
"""Print a Markdown table from hyperfine --export-json files.

    report.py [--ratio-target LABEL:X] [--time-target LABEL:SECONDS] LABEL=FILE.json ...

Each LABEL=FILE.json argument names one hyperfine JSON export and the
environment file it was measured on (several exports may share a label, e.g.
when the two tools were run with different run counts). Commands are matched by
their hyperfine `--command-name`: `maestro` is this project's binary,
`MaestroNG` the Python reference. For each label the table shows both medians,
the ratio MaestroNG median / maestro median, and whether each target holds:

* --ratio-target LABEL:X   the ratio must be >= X
* --time-target LABEL:S    maestro's median must be < S seconds

Exits 1 if a target does not hold or could not be checked, 0 otherwise.
"""

import argparse
import json
import statistics
import sys

MAESTRO = "maestro"
MAESTRONG = "MaestroNG"


def median_of(result):
    if result.get("median") is not None:
        return float(result["median"])
    return statistics.median(result["times"])


def fmt_time(seconds):
    if seconds is None:
        return "n/a"
    if seconds < 1.0:
        return "{:.1f} ms".format(seconds * 1000.0)
    return "{:.2f} s".format(seconds)


def parse_target(spec, cast):
    label, sep, value = spec.rpartition(":")
    if not sep or not label:
        raise SystemExit("bad target {!r}: expected LABEL:VALUE".format(spec))
    return label, cast(value)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ratio-target", action="append", default=[])
    ap.add_argument("--time-target", action="append", default=[])
    ap.add_argument("--note", action="append", default=[],
                    help="LABEL:TEXT shown in the MaestroNG row when it was not run")
    ap.add_argument("exports", nargs="+", metavar="LABEL=FILE.json")
    args = ap.parse_args(argv)

    ratio_targets = dict(parse_target(s, float) for s in args.ratio_target)
    time_targets = dict(parse_target(s, float) for s in args.time_target)
    notes = dict(s.split(":", 1) for s in args.note if ":" in s)

    labels = []
    medians = {}  # (label, tool) -> (median seconds, runs)
    for spec in args.exports:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit("bad export {!r}: expected LABEL=FILE.json".format(spec))
        if label not in labels:
            labels.append(label)
        with open(path) as f:
            data = json.load(f)
        for result in data["results"]:
            medians[(label, result["command"])] = (median_of(result), len(result["times"]))

    ok = True
    print("| file | tool | median | runs | ratio (MaestroNG / maestro) | target |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for label in labels:
        ours = medians.get((label, MAESTRO))
        theirs = medians.get((label, MAESTRONG))
        ratio = theirs[0] / ours[0] if ours and theirs and ours[0] > 0 else None

        verdicts = []
        if label in ratio_targets:
            want = ratio_targets[label]
            if ratio is None:
                verdicts.append(">= {:g}x: not measured".format(want))
                ok = False
            else:
                held = ratio >= want
                ok &= held
                verdicts.append(">= {:g}x: {}".format(want, "yes" if held else "**NO**"))
        if label in time_targets:
            want = time_targets[label]
            if ours is None:
                verdicts.append("< {:g} s: not measured".format(want))
                ok = False
            else:
                held = ours[0] < want
                ok &= held
                verdicts.append("< {:g} s: {}".format(want, "yes" if held else "**NO**"))

        print("| {} | maestro | {} | {} | {} | {} |".format(
            label,
            fmt_time(ours[0]) if ours else "n/a",
            ours[1] if ours else "-",
            "{:.1f}x".format(ratio) if ratio is not None else "n/a",
            "; ".join(verdicts) or "-"))
        if theirs:
            print("| {} | MaestroNG 0.8.3 | {} | {} | | |".format(label, fmt_time(theirs[0]), theirs[1]))
        else:
            print("| {} | MaestroNG 0.8.3 | {} | - | | |".format(label, notes.get(label, "not run")))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
