"""Notification scenarios counted side by side: emails per incident from rover-agent (one
Raft-elected leader sends each incident once) and from HashiCorp Serf event handlers (every agent
runs its handler: each survivor mails).

Both tools mail one real SMTP server (SmtpSink, aiosmtpd, in this process):
  rover-agent  its `[[notify.email]]` channel (rover_only.email_config), envelope sender
               rover@example.org, default `group_wait` 5 s
  serf         every agent runs `-event-handler member-failed=<cmd>` (and, where a host comes
               back, `member-join=<cmd>`); <cmd> is a small Python script written into the
               cluster's temp dir that sends one email per handler invocation over SMTP
               (smtplib), envelope sender serf@example.org, subject
               `serf: member-failed s2 (seen by s1)` naming every member Serf gave it on stdin

Scenarios (each for both tools, same N, agents started alone, joined through the first and
converged; rover-agent also waits for one agreed Raft leader with every agent a voter):
  kill_one     3 agents, kill -9 of one (a non-leader for rover; Serf: the same index)
  back         then restart it with the same name (rover-agent: same data dir, so a newer
               generation of the same node; Serf: a new agent with the same name and port,
               joined through a survivor). Serf's clusters of these two scenarios also run a
               `member-join` handler; the startup joins' emails are let through (the sink
               quiet for 5 s) before the kill, and only emails after the restart count here
  sigstop      3 agents, SIGSTOP of one (a non-leader) for 1.5 s, then SIGCONT: shorter than
               the suspicion time, so no incident (expected: 0 emails from both)
  kill_two     5 agents, kill -9 of two at once (non-leaders)
  kill_leader  3 agents, kill -9 of the rover-agent Raft leader (Serf: the same index)
  no_quorum    3 agents, kill -9 of two (indices 1 and 2): the rover-agent survivor has no Raft
               quorum and leads as fallback after `fallback_after`, set to 5 s here (the
               default is 20 s) with `[election] fallback_after = "5s"`

Counting window: emails from one tool (by envelope sender) that arrive from the event (the kill,
the restart, the SIGSTOP) until 15 s after the first of them, and never later than 90 s after
the event; for sigstop a fixed 30 s from the SIGSTOP. Incidents are the hosts that died or came
back. Each scenario prints one JSON line per tool (value: emails) and a rover/serf ratio line;
a Markdown table goes to stderr at the end.

Every process started is recorded by PID and stopped by that PID; every wait is bounded;
everything listens on 127.0.0.1.

  python3 -m benchlib.notify_compare [--binary PATH] [--quick] [--scenario NAME ...] [--keep-logs DIR]
(run from scripts/, or through scripts/bench-notify.sh; --keep-logs keeps every agent's log)
"""
import argparse, glob, os, shutil, signal, sys, time

from .common import ROOT, Output, stop_on_exit, versions, wait_until
from .rover import RoverCluster
from .rover_only import email_config
from .serf import SerfCluster, temp_dir
from .side_by_side import converge, join_all, up_or_stopped
from .smtp import SmtpSink

ROVER, SERF = "rover-agent", "serf"
TOOLS = (ROVER, SERF)
SENDERS = {ROVER: "rover@example.org", SERF: "serf@example.org"}
AFTER_FIRST, BOUND, QUIET_WINDOW = 15.0, 90.0, 30.0
FALLBACK_AFTER = "5s"
SCENARIOS = ["kill_one", "back", "sigstop", "kill_two", "kill_leader", "no_quorum"]
QUICK = ["kill_one", "kill_two"]

HANDLER = '''#!/usr/bin/env python3
"""Serf event handler of the notify benchmark: one email per invocation, naming the members Serf
passes on stdin (one per line: name, address, role, tags, tab-separated)."""
import os, smtplib, sys
from email.message import EmailMessage

port = int(sys.argv[1])
event, me = os.environ.get("SERF_EVENT", "?"), os.environ.get("SERF_SELF_NAME", "?")
lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
members = [line.split("\\t")[0] for line in lines]
message = EmailMessage()
message["Subject"] = "serf: %s %s (seen by %s)" % (event, ", ".join(members), me)
message["From"] = "serf@example.org"
message["To"] = "ops@example.org"
message.set_content("Sent by %s, serf %s handler.\\n" % (me, event) + "\\n".join(lines) + "\\n")
with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
    smtp.send_message(message, from_addr="serf@example.org", to_addrs=["ops@example.org"])
'''


# --- clusters ---

def serf_mail_handler(directory, smtp_port):
    """Writes the handler script into `directory`; the command Serf runs (through /bin/sh)."""
    path = os.path.join(directory, "mail-handler.py")
    with open(path, "w") as f:
        f.write(HANDLER)
    return f"{sys.executable} {path} {smtp_port}"


def start_serf(n, sink, join_handler):
    directory = temp_dir()
    command = serf_mail_handler(directory, sink.port)
    handlers = [f"member-failed={command}"] + ([f"member-join={command}"] if join_handler else [])
    return SerfCluster(n, handlers=handlers, directory=directory)


def start_rover(binary, n, sink, extra_config=""):
    return RoverCluster(binary, n, join_at_start=False, config=email_config(sink.port) + extra_config)


def start_joined(tool, binary, n, sink, join_handler=False, extra_config=""):
    """N agents of `tool` mailing the sink, started alone, joined through the first, converged;
    rover-agent: with one Raft leader every agent names and every agent a voter."""
    cluster = start_rover(binary, n, sink, extra_config) if tool == ROVER else start_serf(n, sink, join_handler)
    try:
        up_or_stopped(cluster)
        join_all(cluster, n)
        converge(cluster, list(range(n)), timeout=90)
        if tool == ROVER and wait_until(lambda: rover_steady(cluster, n), 60, every=0.1) is None:
            raise SystemExit("rover-agent: no Raft leader with every agent a voter\n" + cluster.tails())
    except BaseException:
        cluster.stop()
        raise
    return cluster


def rover_steady(cluster, n):
    return cluster.raft_leader(range(n), voters=n) is not None


def rover_leader_index(cluster):
    return cluster.names.index(cluster.leader(0)["leader"])


def non_leaders(tool, cluster, n):
    """Indices to kill that are not the rover-agent Raft leader (for Serf, the same indices as the
    rover-agent run would pick: the leader is unknown there, so the last ones)."""
    if tool == ROVER:
        leader = rover_leader_index(cluster)
        return [i for i in reversed(range(n)) if i != leader]
    return list(reversed(range(n)))


def restart_rover(cluster, i, seed):
    """Agent `i` started again as before (same name, ports, data dir, key, config), joining
    through `seed`."""
    cluster.restart(i, join=seed)


def restart_serf(cluster, i, seed):
    """A new serf agent with agent `i`'s name, port and handlers, joined through `seed`."""
    cluster.restart(i)
    if wait_until(lambda: cluster.up(i), 30, every=0.05) is None:
        raise SystemExit(f"serf: {cluster.names[i]} did not come back up\n" + cluster.tails())
    if not cluster.join(i, seed):
        raise SystemExit(f"serf: {cluster.names[i]} could not rejoin\n" + cluster.tails())


def restart(tool, cluster, i, seed):
    (restart_rover if tool == ROVER else restart_serf)(cluster, i, seed)


# --- counting ---

def wait_quiet(sink, tool, quiet_for=5.0, timeout=30.0):
    """Until no email from `tool` arrived for `quiet_for` seconds (the startup joins' member-join
    emails of Serf), at most `timeout` seconds."""
    start = time.monotonic()

    def quiet():
        mails = sink.mails_since(start - 60, SENDERS[tool])
        last = max([m["at"] for m in mails] + [start])
        return time.monotonic() - last >= quiet_for
    return wait_until(quiet, timeout, every=0.1)


def count_window(sink, tool, t0, fixed=None):
    """Emails from `tool` from `t0` until AFTER_FIRST s after the first (at most BOUND s after
    t0), or for exactly `fixed` s; (mails, first email's delay or None, window length)."""
    sender = SENDERS[tool]
    if fixed is not None:
        end = t0 + fixed
    else:
        wait_until(lambda: sink.mails_since(t0, sender), max(0.0, t0 + BOUND - time.monotonic()), every=0.05)
        arrived = [m["at"] for m in sink.mails_since(t0, sender)]
        end = min(min(arrived) + AFTER_FIRST, t0 + BOUND) if arrived else t0 + BOUND
    time.sleep(max(0.0, end - time.monotonic()))  # the counting window itself
    mails = [m for m in sink.mails_since(t0, sender) if m["at"] <= end]
    first = min(m["at"] for m in mails) - t0 if mails else None
    return mails, first, end - t0


class Results:
    """Per scenario: {tool: emails}, incidents and notes; prints the JSON lines as they come and
    the Markdown table at the end."""

    def __init__(self, out):
        self.out, self.rows = out, {}

    def record(self, scenario, n, tool, incidents, t0, mails, first, window, **extra):
        emails = len(mails)
        per = round(emails / incidents, 3) if incidents else None
        self.out.line(scenario=scenario, n=n, tool=tool, value=emails, unit="emails", incidents=incidents,
                      emails_per_incident=per, first_email_s=None if first is None else round(first, 2),
                      window_s=round(window, 1), subjects=[m["subject"] for m in mails],
                      arrivals_s=[round(m["at"] - t0, 2) for m in mails], sent_by=[sent_by(m) for m in mails],
                      **extra)
        row = self.rows.setdefault(scenario, {"n": n, "incidents": incidents})
        row[tool] = emails
        if ROVER in row and SERF in row:
            self.ratio(scenario, n, row)

    def ratio(self, scenario, n, row):
        rover, serf = row[ROVER], row[SERF]
        value = round(rover / serf, 3) if serf else None
        self.out.line(scenario=scenario, n=n, tool="rover/serf", value=value, unit="ratio",
                      rover=rover, serf=serf, measured_in="emails")

    def table(self):
        lines = ["| scenario | n | incidents | rover-agent emails | serf emails | emails per incident "
                 "(rover-agent / serf) | rover/serf |", "|---|---|---|---|---|---|---|"]
        for scenario, row in self.rows.items():
            rover, serf, incidents = row.get(ROVER), row.get(SERF), row["incidents"]
            lines.append(f"| {scenario} | {row['n']} | {incidents} | {show(rover)} | {show(serf)} | "
                         f"{per_incident(rover, incidents)} / {per_incident(serf, incidents)} | "
                         f"{ratio_text(rover, serf)} |")
        return "\n".join(lines)


def sent_by(mail):
    """The "Sent by ..." line of a message's body (rover-agent's names the leader and its mode;
    the Serf handler's names the agent that ran it)."""
    return next((line.strip() for line in mail["body"].splitlines() if line.startswith("Sent by")), "?")


def show(value):
    return "-" if value is None else str(value)


def per_incident(emails, incidents):
    if emails is None or not incidents:
        return "-"
    return f"{emails / incidents:.2f}"


def ratio_text(rover, serf):
    if rover is None or serf is None or not serf:
        return "-"
    return f"{rover / serf:.2f}"


# --- scenarios ---

class Bench:
    """What every scenario shares: the binary, the SMTP sink, the results, and the index the
    rover-agent run of a scenario killed (Serf's run of kill_leader kills the same one)."""

    def __init__(self, binary, sink, results, keep_logs=None):
        self.binary, self.sink, self.results, self.keep_logs = binary, sink, results, keep_logs
        self.rover_killed = {}

    def stop(self, scenario, tool, cluster):
        """Stops the cluster; with --keep-logs, first copies its agents' logs to
        KEEP/<scenario>-<tool>/."""
        if self.keep_logs:
            kept = os.path.join(self.keep_logs, f"{scenario}-{tool}")
            os.makedirs(kept, exist_ok=True)
            for log in glob.glob(os.path.join(cluster.dir, "*.log")):
                shutil.copy(log, kept)
        cluster.stop()

    def cluster(self, tool, n, join_handler=False, extra_config=""):
        started = time.monotonic()
        cluster = start_joined(tool, self.binary, n, self.sink, join_handler, extra_config)
        if join_handler and tool == SERF:
            wait_quiet(self.sink, tool)
        return cluster, started

    def setup_emails(self, tool, started):
        return len(self.sink.mails_since(started, SENDERS[tool]))

    def describe(self, tool, cluster, killed, join_handler=False):
        """The JSON fields naming who was hit (and, for rover-agent, who led; for Serf, its handlers)."""
        fields = {"killed": [cluster.names[i] for i in killed]}
        if tool == ROVER:
            fields["raft_leader"] = cluster.names[rover_leader_index(cluster)]
        else:
            fields["handlers"] = ["member-failed"] + (["member-join"] if join_handler else [])
        return fields


def kill(cluster, victims):
    """kill -9 of every victim, one right after the other; the time of the first kill."""
    t0 = time.monotonic()
    for i in victims:
        cluster.kill(i)
    return t0


def kill_one(bench, tool, with_back):
    """3 agents, kill -9 of a non-leader; with `with_back`, then its restart (scenario back)."""
    n = 3
    cluster, started = bench.cluster(tool, n, join_handler=with_back)
    try:
        victim = non_leaders(tool, cluster, n)[0]
        fields = bench.describe(tool, cluster, [victim], with_back)
        setup = bench.setup_emails(tool, started)
        t0 = kill(cluster, [victim])
        mails, first, window = count_window(bench.sink, tool, t0)
        bench.results.record("notify_kill_one", n, tool, 1, t0, mails, first, window, setup_emails=setup, **fields)
        if with_back:
            seed = next(i for i in range(n) if i != victim)
            t0 = time.monotonic()
            restart(tool, cluster, victim, seed)
            mails, first, window = count_window(bench.sink, tool, t0)
            fields = {"restarted": cluster.names[victim], **({"handlers": fields["handlers"]} if tool == SERF else {})}
            bench.results.record("notify_back", n, tool, 1, t0, mails, first, window, **fields)
    finally:
        bench.stop("kill_one", tool, cluster)


def sigstop(bench, tool, pause=1.5):
    """3 agents, SIGSTOP of a non-leader for `pause` s, then SIGCONT; counted for 30 s."""
    n = 3
    cluster, started = bench.cluster(tool, n)
    try:
        victim = non_leaders(tool, cluster, n)[0]
        fields = bench.describe(tool, cluster, [], False)
        t0 = time.monotonic()
        cluster.signal(victim, signal.SIGSTOP)
        try:
            time.sleep(pause)  # the pause itself
        finally:
            cluster.signal(victim, signal.SIGCONT)
        mails, first, window = count_window(bench.sink, tool, t0, fixed=QUIET_WINDOW)
        fields.pop("killed")
        bench.results.record("notify_sigstop", n, tool, 0, t0, mails, first, window, stopped=cluster.names[victim],
                             pause_s=pause, **fields)
    finally:
        bench.stop("sigstop", tool, cluster)


def kill_two(bench, tool):
    """5 agents, kill -9 of two non-leaders at once."""
    n = 5
    cluster, started = bench.cluster(tool, n)
    try:
        victims = non_leaders(tool, cluster, n)[:2]
        fields = bench.describe(tool, cluster, victims)
        t0 = kill(cluster, victims)
        mails, first, window = count_window(bench.sink, tool, t0)
        bench.results.record("notify_kill_two", n, tool, 2, t0, mails, first, window, **fields)
    finally:
        bench.stop("kill_two", tool, cluster)


def kill_leader(bench, tool):
    """3 agents, kill -9 of the rover-agent Raft leader; Serf: the index rover-agent's run killed."""
    n = 3
    cluster, started = bench.cluster(tool, n)
    try:
        victim = rover_leader_index(cluster) if tool == ROVER else bench.rover_killed.get("kill_leader", 0)
        bench.rover_killed["kill_leader"] = victim
        fields = bench.describe(tool, cluster, [victim])
        t0 = kill(cluster, [victim])
        mails, first, window = count_window(bench.sink, tool, t0)
        bench.results.record("notify_kill_leader", n, tool, 1, t0, mails, first, window, **fields)
    finally:
        bench.stop("kill_leader", tool, cluster)


def no_quorum(bench, tool):
    """3 agents, kill -9 of agents 1 and 2: rover-agent's survivor has no Raft quorum and leads
    as fallback after `fallback_after` (5 s here)."""
    n = 3
    extra = f'\n[election]\nfallback_after = "{FALLBACK_AFTER}"\n'
    cluster, started = bench.cluster(tool, n, extra_config=extra)
    try:
        victims = [1, 2]
        fields = bench.describe(tool, cluster, victims)
        if tool == ROVER:
            fields["fallback_after"] = FALLBACK_AFTER
        t0 = kill(cluster, victims)
        mails, first, window = count_window(bench.sink, tool, t0)
        bench.results.record("notify_no_quorum", n, tool, 2, t0, mails, first, window, **fields)
    finally:
        bench.stop("no_quorum", tool, cluster)


def run(bench, chosen):
    """The chosen scenarios in order, each for rover-agent then Serf."""
    steps = []
    if "kill_one" in chosen or "back" in chosen:
        steps.append(lambda tool: kill_one(bench, tool, with_back="back" in chosen))
    if "sigstop" in chosen:
        steps.append(lambda tool: sigstop(bench, tool))
    if "kill_two" in chosen:
        steps.append(lambda tool: kill_two(bench, tool))
    if "kill_leader" in chosen:
        steps.append(lambda tool: kill_leader(bench, tool))
    if "no_quorum" in chosen:
        steps.append(lambda tool: no_quorum(bench, tool))
    for step in steps:
        for tool in TOOLS:
            step(tool)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
    parser.add_argument("--binary", default=os.path.join(target, "release/rover-agent"))
    parser.add_argument("--quick", action="store_true", help="kill_one and kill_two only")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append",
                        help="run only these (repeatable; back runs kill_one first); default: all")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every cluster's agent logs to DIR/<scenario>-<tool>/")
    args = parser.parse_args()
    chosen = set(args.scenario or (QUICK if args.quick else SCENARIOS))
    stop_on_exit()

    started = time.monotonic()
    out = Output(versions(args.binary))
    results = Results(out)
    sink = SmtpSink()
    try:
        run(Bench(args.binary, sink, results, args.keep_logs), chosen)
    finally:
        sink.stop()
    print(results.table(), file=sys.stderr)
    print(f"\nwindow: from the event until {AFTER_FIRST:.0f} s after the first email of that tool "
          f"(at most {BOUND:.0f} s); sigstop: {QUIET_WINDOW:.0f} s. back: Serf counts every member-join "
          f"handler email after the restart. no_quorum: rover-agent with fallback_after = {FALLBACK_AFTER}.",
          file=sys.stderr)
    print(f"notify benchmarks took {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
