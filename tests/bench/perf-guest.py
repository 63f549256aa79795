#!/usr/bin/env python3
"""Which functions of which flows the guest samples of a `--perf` profile fell in.

    FLOWHOST_PERFMAP=1 FLOWHOST_BENCH_PERF_KEEP=DIR flowhost-bench --only wasm --perf --root R
    tests/bench/perf-guest.py DIR/perf-wasm-PID.data [TOP]

With FLOWHOST_PERFMAP set, the engine writes /tmp/perf-<pid>.map (one line per compiled
function: start, size, name), and the bench keeps, beside the profile, `perf-wasm-PID.flows`
(which flow each compiled `.cwasm` file is). This reads the samples perf recorded in the flows'
compiled code, finds each one's function in the map and prints the TOP (default 40) flow and
function pairs by share of all samples, names demangled with c++filt. Flows built with
`strip = true` (flows/'s release profile) have no names: build them with
CARGO_PROFILE_RELEASE_STRIP=false and put them in R/flows/dist.
"""
import bisect, collections, os, re, subprocess, sys

data = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
flows = {}
names_file = os.path.splitext(data)[0] + ".flows"
if os.path.exists(names_file):
    for line in open(names_file):
        file, flow = line.split()
        flows[file] = flow
script = subprocess.run(["perf", "script", "-i", data, "-F", "pid,ip,dso"],
                        capture_output=True, text=True, check=True).stdout
maps = {}


def functions(pid):
    """The perf map of process `pid`: (start, end, line number, name) by start, and the
    largest function's size. The map only grows: code compiled in memory and freed, then a
    module loaded at the same addresses, leaves both entries; the later line is the code the
    drain ran."""
    if pid not in maps:
        rows = []
        try:
            for at, line in enumerate(open(f"/tmp/perf-{pid}.map")):
                start, size, name = line.rstrip("\n").split(" ", 2)
                rows.append((int(start, 16), int(start, 16) + int(size, 16), at, name))
        except FileNotFoundError:
            pass
        rows.sort()
        widest = max((end - start for start, end, _, _ in rows), default=0)
        maps[pid] = ([r[0] for r in rows], rows, widest)
    return maps[pid]


def name_at(pid, ip):
    """The name of the function at `ip`: of the entries that cover it, the latest written."""
    starts, rows, widest = functions(pid)
    best = None
    i = bisect.bisect_right(starts, ip) - 1
    while i >= 0 and rows[i][0] > ip - widest - 1:
        start, end, at, name = rows[i]
        if ip < end and (best is None or at > best[0]):
            best = (at, name)
        i -= 1
    return best[1] if best else "?"


total, guest, hits = 0, 0, collections.Counter()
for line in script.splitlines():
    parts = line.split()
    if len(parts) < 3:
        continue
    total += 1
    dso = os.path.basename(parts[2].strip("()"))
    if not dso.endswith(".cwasm"):
        continue
    guest += 1
    name = name_at(parts[0], int(parts[1], 16))
    # `wasm[0]::function[73]::NAME` -> NAME (the index alone when the flow has no names).
    name = re.sub(r"^wasm\[\d+\]::function\[\d+\]::", "", name)
    hits[(flows.get(dso, dso[:12]), name)] += 1



def legacy(name):
    """A Rust legacy-mangled name (`_ZN...`), cut short or not, as its path: what c++filt
    cannot read because the map's name was truncated."""
    m = re.match(r"_ZN", name)
    if not m:
        return name
    at, parts = 3, []
    while True:
        n = re.match(r"\d+", name[at:])
        if not n:
            break
        length, at = int(n.group()), at + len(n.group())
        part = name[at:at + length]
        at += length
        if re.fullmatch(r"h[0-9a-f]{1,16}", part):
            break
        parts.append(part)
    path = "::".join(parts)
    for code, text in [("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$RF$", "&"), ("$C$", ","),
                       ("$u5b$", "["), ("$u5d$", "]"), ("$BP$", "*"), ("..", "::")]:
        path = path.replace(code, text)
    return re.sub(r"^_<", "<", path) or name


ranked = hits.most_common(top)
shown = subprocess.run(["c++filt"], input="\n".join(n for (_, n), _ in ranked) + "\n",
                       capture_output=True, text=True).stdout.splitlines()
print(f"{total} samples, {guest} in the flows' code ({100 * guest / max(total, 1):.1f}%)")
for ((flow, name), n), plain in zip(ranked, shown + [n for (_, n), _ in ranked][len(shown):]):
    plain = re.sub(r"::h[0-9a-f]{1,16}$", "", legacy(plain))
    print(f"{100 * n / max(total, 1):6.2f}%  {flow:5} {plain[:110]}")
