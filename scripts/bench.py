#!/usr/bin/env python3
"""rover-agent benchmarks, side by side with HashiCorp Serf, printed as JSON lines on stdout
(one object per measurement: scenario, n, tool, value, unit, cores, both tools' versions; each
side-by-side scenario ends with a `rover/serf` line, the ratio of the medians). A Markdown table
of the medians and ratios goes to stderr at the end.

Side by side (same N, loopback, default LAN timings for both; see benchlib/side_by_side.py):
  join, failure, dissemination  at N = 5, 20, 50, 100 (--quick: 5)
  idle                          at N = 5, 20, 50 (--quick: 5): RSS, CPU seconds, bytes sent per
                                second, per agent (mean over the cluster)
rover-agent alone (Serf has no leader nor notifier; see benchlib/rover_only.py):
  leader; notify (kill -9 to email, only when asked: scripts/bench-notify.sh counts the emails
  of both tools)
The ledger (only when asked; see benchlib/ledger.py):
  ledger       data dir size after 100, 1 000 and 10 000 alerts raised and cleared, and after
               incidents.retention (--ledger-minutes bounds the run)
  engine_idle  CPU of 3 idle agents with an exec channel over the window
Teams, border links between clusters (only when asked; see benchlib/teams.py):
  teams        a diamond of transit links a-b, a-c, b-d, c-d (2 agents a team, d 3): seconds
               from `alert raise` on a2 until every host of d lists it (5 alerts, each run and
               the median); UpdateAlert frames per alert on every link end (`updates_in` of GET
               /v1/teams, before and after 5 alerts raised on a2) in figure 3 (a, b, c linked
               pairwise, direct), the chain a-b-c (direct, then transit) and the diamond; and
               kill -9 of team b's border until every host of team a lists the ROVER alert
               team-link/b firing (teams a, b of 2, direct; link_timeout 15 s, then 3 s; 3 runs
               each, --quick: 1). About 80 s.
The membership simulation at 1 000 and 10 000 nodes (sim; --quick: 1 000):
  periods until all know of a join and a death, traffic per node per period, next to theory

Every process started is recorded by PID and stopped by that PID, also when the run aborts
(an error, Ctrl-C, SIGTERM); an agent that finds its port taken by another program is started
again on new ports; every wait is bounded.
"""
import argparse, json, os, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ledger, rover_only, side_by_side, teams  # noqa: E402
from benchlib.common import ROOT, Output, stop_on_exit, versions  # noqa: E402

SCENARIOS = ["join", "failure", "dissemination", "idle", "leader", "notify", "sim", "ledger", "engine_idle",
             "teams"]
# Only run when named: notify is measured side by side with Serf handlers by bench-notify.sh;
# the ledger scenarios measure rover-agent's storage and engine alone, teams its border links.
ON_REQUEST = {"notify", "ledger", "engine_idle", "teams"}


def simulation(out, target, quick):
    binary = os.path.join(target, "release/examples/sim_bench")
    args = [binary] + (["--quick"] if quick else [])
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        raise SystemExit(f"sim_bench failed:\n{run.stderr[-3000:]}")
    for line in run.stdout.splitlines():
        if line.strip():
            fields = json.loads(line)
            out.line(**fields)


def numbers(text):
    return [int(n) for n in text.split(",")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # cargo's own CARGO_TARGET_DIR, when set, is where bench.sh's build put the binaries.
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
    parser.add_argument("--binary", default=os.path.join(target, "release/rover-agent"))
    parser.add_argument("--quick", action="store_true",
                        help="N = 5 only, 3 runs, 10 s idle window, no rover-only scenarios (< 3 min)")
    parser.add_argument("--scenario", choices=SCENARIOS + ["all"], action="append",
                        help="run only these (repeatable); default: all")
    parser.add_argument("--sizes", default=None, help="comma-separated N for join/failure/dissemination")
    parser.add_argument("--idle-sizes", default=None, help="comma-separated N for idle")
    parser.add_argument("--ledger-minutes", type=float, default=40,
                        help="bound of the ledger scenario's raising and clearing (default 40)")
    parser.add_argument("--no-retention", action="store_true",
                        help="ledger: do not set incidents.retention nor wait for it")
    args = parser.parse_args()
    stop_on_exit()
    chosen = set(args.scenario or ["all"])
    if "all" in chosen:
        chosen = set(SCENARIOS) - ON_REQUEST - ({"leader"} if args.quick else set())
    sizes = numbers(args.sizes) if args.sizes else ([5] if args.quick else [5, 20, 50, 100])
    idle_sizes = numbers(args.idle_sizes) if args.idle_sizes else ([5] if args.quick else [5, 20, 50])
    runs, window = 3, (10 if args.quick else 60)

    started = time.monotonic()
    out = Output(versions(args.binary))
    tools = side_by_side.TOOLS
    for scenario, measure in (("join", side_by_side.join_convergence), ("failure", side_by_side.failure_detection),
                              ("dissemination", side_by_side.dissemination)):
        if scenario not in chosen:
            continue
        for n in sizes:
            for tool in tools:
                measure(out, args.binary, tool, n, runs if scenario != "dissemination" else 5)
            out.ratio(side_by_side.NAMES[scenario], n, "s")
    if "idle" in chosen:
        for n in idle_sizes:
            # Clusters of one size idle side by side: 3 of each tool at N = 5, fewer above (a run's
            # figure is already a mean over its N agents).
            side_by_side.idle(out, args.binary, n, window, runs if n <= 5 else (2 if n <= 20 else 1))
    if "leader" in chosen:
        rover_only.leader_failover(out, args.binary, 5, runs)
        rover_only.fallback(out, args.binary, 1)
    if "notify" in chosen:
        rover_only.notify(out, args.binary, runs)
    if "ledger" in chosen:
        ledger.ledger_size(out, args.binary, args.ledger_minutes, not args.no_retention)
    if "engine_idle" in chosen:
        ledger.engine_idle(out, args.binary, window)
    if "teams" in chosen:
        teams.teams(out, args.binary, args.quick)
    if "sim" in chosen:
        simulation(out, target, args.quick)
    table = out.table()
    if table.count("\n") > 1:
        print(table, file=sys.stderr)
    print(f"benchmarks took {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
