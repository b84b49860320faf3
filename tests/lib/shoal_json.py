#!/usr/bin/env python3
"""tests/lib/shoal_json.py: small JSON checks for the shell tests of the
control plane (the answers of GET /health, /state, /nodes, /events and of
`shoal replay --json`). Exit status 0 = check passed; messages on stderr.

  get PATH [FILE]         print the value at a dotted path ("leader.id",
                          "state.epoch.members"): lists space-separated,
                          null as "-", true/false; "-" when absent
  entries-match MAX A B.. every /events page B.. holds entries 1..MAX exactly
                          as page A does (index, term, kind, event; the row
                          time is each node's own append time, not compared)
  summary [FILE]          a GET /state answer as one line: "ROLE LEADER TERM
                          EPOCH MEMBERS NODES COMMIT" (MEMBERS, NODES: sorted
                          ids joined by ",", "-" when none)
  merge FILE...           the "events" of several /events pages as one
                          {"events": [...]} document
  log-ok FILE             a replay --json document: entries contiguous from
                          1, commit <= last, no rejected entry; prints
                          "last commit term voted_for"
  types FILE              replay --json: the event type of every entry,
                          one per line, then "archived REASON" per archived row
  story FILE T1 T2 ...    replay --json: the types T1, T2... occur in this
                          order among the entries (others may be between);
                          "epoch_started/1" means one with exactly 1 member
"""
import json
import sys


def load(path=None):
    with (open(path) if path and path != "-" else sys.stdin) as f:
        return json.load(f)


def at(doc, path):
    v = doc
    for k in path.split("."):
        if isinstance(v, dict) and k in v:
            v = v[k]
        else:
            return None
    return v


def show(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return " ".join(show(x) for x in v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict,)):
        return json.dumps(v, sort_keys=True)
    return str(v)


def key(e):
    return (e.get("index"), e.get("term"), e.get("kind"),
            json.dumps(e.get("event", e.get("payload")), sort_keys=True))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "get":
        try:
            doc = load(argv[3] if len(argv) > 3 else None)
        except (OSError, ValueError):
            print("-")  # no answer, or not JSON: the caller's wait goes on
            return 1
        print(show(at(doc, argv[2])))
        return 0
    if cmd == "summary":
        try:
            d = load(argv[2] if len(argv) > 2 else None)
            st = d["state"]
            print(d["role"], show(at(d, "leader.id")), show(d["term"]), show(d["epoch"]["number"]),
                  ",".join(sorted(st["epoch"]["members"])) or "-",
                  ",".join(sorted(n["node"] for n in st["nodes"])) or "-",
                  show(d["commit_index"]))
        except (OSError, ValueError, KeyError, TypeError):
            print("- - - - - - -")
            return 1
        return 0
    if cmd == "merge":
        out = []
        for path in argv[2:]:
            out.extend(load(path)["events"])
        print(json.dumps({"events": out}))
        return 0
    if cmd == "entries-match":
        top = int(argv[2])
        ref = {e["index"]: key(e) for e in load(argv[3])["events"]}
        for i in range(1, top + 1):
            if i not in ref:
                print(f"reference page lacks entry {i}", file=sys.stderr)
                return 1
        for path in argv[4:]:
            got = {e["index"]: key(e) for e in load(path)["events"]}
            for i in range(1, top + 1):
                if got.get(i) != ref[i]:
                    print(f"{path}: entry {i} differs:\n  want {ref[i]}\n  got  {got.get(i)}",
                          file=sys.stderr)
                    return 1
        return 0
    doc = load(argv[2])
    entries = doc.get("entries", [])
    if cmd == "log-ok":
        log = doc["log"]
        for i, e in enumerate(entries):
            if e["index"] != i + 1:
                print(f"entry {i + 1} has index {e['index']}", file=sys.stderr)
                return 1
            if e.get("reject"):
                print(f"entry {e['index']} rejected: {e['reject']}", file=sys.stderr)
                return 1
        if len(entries) != log["last_index"] or log["commit_index"] > log["last_index"]:
            print(f"{len(entries)} entries, log says {log}", file=sys.stderr)
            return 1
        print(log["last_index"], log["commit_index"], log["term"], log["voted_for"])
        return 0
    if cmd == "types":
        for e in entries:
            print(e.get("type", "?"))
        for a in doc.get("archived", []):
            print("archived", a.get("reason", ""))
        return 0
    if cmd == "story":
        want = argv[3:]
        k = 0
        for e in entries:
            if k == len(want):
                break
            t, _, n = want[k].partition("/")
            ev = e.get("event") or {}
            if e.get("type") == t and (not n or len(ev.get("members", [])) == int(n)):
                k += 1
        if k < len(want):
            print("story stops before " + want[k] + "; types were: " +
                  " ".join(e.get("type", "?") for e in entries), file=sys.stderr)
            return 1
        return 0
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
