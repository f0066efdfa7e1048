"""Grid-control records and key rotation of rover-agent, measured on loopback (JSON lines on
stdout, one object per run and one per median; a Markdown table on stderr):

  record_spread   seconds from `service set` on one agent until every agent's `service get`
                  answers it (the agent setting it rotates), N = 5 and 20
  keys_use        seconds for `keys use` of a key installed everywhere until it answers with
                  every member acknowledged (the step persists the keyring on each), N = 5, 20
  record_bytes    encoded sizes: an address record, a named service record, a trust record,
                  and a record inside its gossip item (what one broadcast carries per record)

Every process is started and stopped by PID (benchlib.common.Processes); waits are bounded.
"""
import argparse, base64, os, statistics, subprocess, sys, time

from .common import ROOT, Output, wait_until
from .rover import RoverCluster


def varint_len(n):
    length = 1
    while n >= 0x80:
        n >>= 7
        length += 1
    return length


def converge(cluster, n, timeout=120):
    def all_alive():
        for i in range(n):
            statuses = cluster.statuses(i)
            if len(statuses) != n or any(s != "alive" for s in statuses.values()):
                return False
        return True
    if wait_until(all_alive, timeout, every=0.2) is None:
        raise SystemExit(f"{n} agents did not converge\n" + cluster.tails())


def record_spread(out, cluster, n, runs):
    values = []
    for run in range(runs):
        name, addr, setter = f"bench{run}", f"127.0.0.1:{10000 + run}", run % n
        start = time.monotonic()
        if cluster.request(setter, "POST", "/v1/services/set", {"name": name, "addr": addr},
                           token=True) is None:
            raise SystemExit("service set failed\n" + cluster.tails())
        def everywhere():
            for i in range(n):
                answer = cluster.request(i, "GET", f"/v1/services/{name}")
                if not answer or answer.get("addr") != addr:
                    return False
            return True
        if wait_until(everywhere, 60, every=0.01) is None:
            raise SystemExit(f"record {name} did not reach all {n}\n" + cluster.tails())
        took = time.monotonic() - start
        values.append(took)
        out.sample("record_spread", n, "rover-agent", took, "s")
    out.summary("record_spread", n, "rover-agent", values, "s")
    return values


def keys_use(out, cluster, n, runs, binary):
    values = []
    for run in range(runs):
        old = cluster.info(0)["keys"][0]["fingerprint"]
        key = subprocess.check_output([binary, "keygen"], text=True).strip()
        report = cluster.request(run % n, "POST", "/v1/keys/install", {"key": key}, token=True)
        if not report or report["acknowledged"] != n:
            raise SystemExit(f"keys install: {report}")
        start = time.monotonic()
        report = cluster.request(run % n, "POST", "/v1/keys/use", {"key": key}, token=True)
        took = time.monotonic() - start
        if not report or report["acknowledged"] != n:
            raise SystemExit(f"keys use: {report}")
        values.append(took)
        out.sample("keys_use", n, "rover-agent", took, "s", acknowledged=report["acknowledged"])
        report = cluster.request(run % n, "POST", "/v1/keys/remove", {"key": old}, token=True)
        if not report or report["acknowledged"] != n:
            raise SystemExit(f"keys remove: {report}")
    out.summary("keys_use", n, "rover-agent", values, "s")
    return values


def record_bytes(out, cluster):
    token_body = {"who": base64.b64encode(b"\x07" * 32).decode(), "petname": "Bob",
                  "what": ["accept-alerts-from", "send-alerts-to"]}
    cluster.request(0, "POST", "/v1/trust/add", token_body, token=True)
    records = cluster.request(0, "GET", "/v1/records") or []
    seen = {}
    for record in records:
        kind = record["service"].split("/")[0]
        seen.setdefault(kind, record)
    for kind, record in sorted(seen.items()):
        size = record["bytes"]
        # The gossip item: topic (1), key (16 hex digits and its length), version (the
        # seqnum), then the record with its length.
        item = 1 + 1 + 16 + varint_len(record["seqnum"]) + varint_len(size) + size
        out.line(scenario="record_bytes", service=kind, tool="rover-agent", record=size,
                 gossip_item=item, unit="bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/rover-agent"))
    parser.add_argument("--n", type=int, action="append", help="cluster sizes (default 5 and 20)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.split()
    out = Output({"rover-agent": version[-1] if version else "?"})
    rows = ["| measurement | n | median | min | max |", "|---|---|---|---|---|"]

    def row(name, n, values):
        rows.append(f"| {name} | {n} | {statistics.median(values):.3f} s | {min(values):.3f} s "
                    f"| {max(values):.3f} s |")

    for n in args.n or [5, 20]:
        cluster = RoverCluster(args.binary, n)
        try:
            if cluster.wait_up() is None:
                raise SystemExit("agents did not come up\n" + cluster.tails())
            converge(cluster, n)
            row("record to every agent", n, record_spread(out, cluster, n, args.runs))
            row("keys use acknowledged by all", n, keys_use(out, cluster, n, args.runs, args.binary))
            if n == (args.n or [5])[0]:
                record_bytes(out, cluster)
        finally:
            cluster.stop()
    print("\n".join(rows), file=sys.stderr)


if __name__ == "__main__":
    main()
