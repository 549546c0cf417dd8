#!/usr/bin/env python3
"""Fills in what Jinja2 prints for every template of jinja2_table.json.

usage: PYTHON-WITH-JINJA2 jinja2_table.py [--check]

Run it with a Python that has Jinja2 3.1 (MaestroNG 0.8.3's), for example the one
tests/conformance/regenerate.py installs: tests/conformance/.venv/bin/python. Each entry's
`template` is rendered as MaestroNG renders an environment file (a plain
jinja2.Environment, `env` in the context); `jinja2` gets the text, or `jinja2_error` the
exception ("TypeName: message"). Entries where maestro knowingly differs say so in
`maestro` (its text) or `maestro_error` (part of its message), with `why`; the Rust test
(jinja2.rs) checks maestro against all of it. --check writes nothing and exits 1 when the
file is not what Jinja2 prints.
"""
import json
import os
import sys

import jinja2

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jinja2_table.json")


def main():
    check = "--check" in sys.argv[1:]
    table = json.load(open(PATH))
    env = jinja2.Environment(auto_reload=False)
    for entry in table:
        entry.pop("jinja2", None)
        entry.pop("jinja2_error", None)
        try:
            entry["jinja2"] = env.from_string(entry["template"]).render(env={})
        except Exception as e:  # what Jinja2 raises is the expectation
            entry["jinja2_error"] = f"{type(e).__name__}: {e}"
    text = json.dumps(table, indent=1, ensure_ascii=False) + "\n"
    if check:
        same = text == open(PATH).read()
        print("jinja2_table.json is up to date" if same else "jinja2_table.json differs from Jinja2")
        sys.exit(0 if same else 1)
    with open(PATH, "w") as f:
        f.write(text)
    print(f"{len(table)} templates")


main()
