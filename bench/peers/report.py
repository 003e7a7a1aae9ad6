"""The markdown report of bench/peers/run.sh: from the braid-bench JSON and wrk output it left in
DIR, one table of throughput, one of latency, the errors, and the wrk cross-check.

    python3 report.py DIR MACHINE VERSIONS DURATION braid [bentoml] [ray]
"""
import json
import os
import re
import sys

NAMES = {"braid": "braid", "bentoml": "BentoML", "ray": "Ray Serve"}
ENDPOINTS = [("multi_model", "process_a"), ("multi_model", "process_b"), ("multi_model", "combined_process"),
             ("sequential", "predict"), ("ensemble", "ensemble_predict"), ("inference_graph", "generate_score")]
CLIENTS = (1, 64)


def load(d, server, g, ep, c):
    path = os.path.join(d, f"{server}.{g}.{ep}.{c}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["runs"][0]


def wrk(d, server):
    path = os.path.join(d, f"{server}.wrk.txt")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    field = lambda pattern: (m.group(1) if (m := re.search(pattern, text, re.M)) else "")
    return {"rps": field(r"Requests/sec:\s+(\S+)"), "p50": field(r"^\s+50%\s+(\S+)"), "p99": field(r"^\s+99%\s+(\S+)"),
            "non2xx": field(r"Non-2xx or 3xx responses:\s+(\d+)") or "0"}


def main():
    d, machine, versions, duration, servers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    peers = [s for s in servers if s != "braid"]
    runs = {(s, g, ep, c): load(d, s, g, ep, c) for s in servers for g, ep in ENDPOINTS for c in CLIENTS}
    out = [f"peers: {machine}; {versions}; braid-bench --http, closed loop, {duration} after 2s warm-up, "
           "one server at a time", ""]

    out.append("Throughput (requests/s; the last columns: braid's throughput over the peer's):")
    out.append("")
    out.append("| endpoint | clients | " + " | ".join(f"{NAMES[s]} req/s" for s in servers) + " | "
               + " | ".join(f"braid / {NAMES[p]}" for p in peers) + " |")
    out.append("|---|---:|" + "---:|" * (len(servers) + len(peers)))
    for g, ep in ENDPOINTS:
        for c in CLIENTS:
            rs = [runs[(s, g, ep, c)] for s in servers]
            cells = [f"{r['throughput']:.0f}" if r else "" for r in rs]
            b = runs[("braid", g, ep, c)]
            ratios = []
            for p in peers:
                r = runs[(p, g, ep, c)]
                ratios.append(f"{b['throughput'] / max(r['throughput'], 1e-9):.1f}x" if b and r else "")
            out.append(f"| {g}.{ep} | {c} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

    out += ["", "Latency (ms, p50 / p99):", ""]
    out.append("| endpoint | clients | " + " | ".join(NAMES[s] for s in servers) + " |")
    out.append("|---|---:|" + "---:|" * len(servers))
    for g, ep in ENDPOINTS:
        for c in CLIENTS:
            cells = []
            for s in servers:
                r = runs[(s, g, ep, c)]
                cells.append(f"{r['latency_ms']['p50']:.2f} / {r['latency_ms']['p99']:.2f}" if r else "")
            out.append(f"| {g}.{ep} | {c} | " + " | ".join(cells) + " |")

    errors = []
    for (s, g, ep, c), r in runs.items():
        if r and r["errors"]:
            kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r["errors_by_kind"].items()))
            errors.append(f"| {NAMES[s]} | {g}.{ep} | {c} | {r['errors']} | {kinds} |")
    out += [""]
    if errors:
        out += ["Failed requests:", "", "| server | endpoint | clients | errors | kinds |", "|---|---|---:|---:|---|"]
        out += errors
    else:
        out.append("Failed requests: none, on any server.")

    w = [(s, wrk(d, s)) for s in servers]
    if any(x for _, x in w):
        out += ["", f"wrk -t1 -c64 -d{duration}, ensemble.ensemble_predict (independent of braid-bench):", "",
                "| server | req/s | p50 | p99 | non-2xx |", "|---|---:|---:|---:|---:|"]
        out += [f"| {NAMES[s]} | {x['rps']} | {x['p50']} | {x['p99']} | {x['non2xx']} |" for s, x in w if x]
    print("\n".join(out))


if __name__ == "__main__":
    main()
