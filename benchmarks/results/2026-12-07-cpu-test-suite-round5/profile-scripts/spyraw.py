"""py-spy's raw output (`py-spy record --format raw`), as spyagg.py, spyfork.py and spyimp.py read it: the file named
on their command line (spy.txt by default), one record per sampled stack, a record whose command line holds newlines
joined back into one."""

import sys


def records():
    buf = None
    for line in open(sys.argv[1] if len(sys.argv) > 1 else "spy.txt"):
        if line.startswith("process ") and buf is not None:
            yield buf
            buf = None
        buf = line if buf is None else buf + line
    if buf:
        yield buf


def samples():
    """(process frames, code frames, sample count) for each record, outermost first."""
    for rec in records():
        stack, _, n = rec.replace("\n", " ").rstrip().rpartition(" ")
        parts = stack.split(";")
        yield [p for p in parts if p.startswith("process ")], [p for p in parts if not p.startswith("process ")], int(n)
