"""Scenarios Serf has no counterpart for (it has no leader and no notifier), measured on
rover-agent alone:

  leader    kill -9 of the Raft leader of 5: seconds until every survivor names one new Raft
            leader; 3 agents, kill 2: seconds until the survivor leads as fallback (20 s delay)
  notify    kill -9 of a non-leader of 3 until its `rover: DOWN <name>` email reaches a real SMTP
            server (default group_wait 5 s), and how many emails arrive from the kill until 10 s
            after that one
"""
import signal, time

from .common import wait_until
from .rover import RoverCluster
from .side_by_side import up_or_stopped
from .smtp import SmtpSink

TOOL = "rover-agent"


def converged(cluster, live):
    n = len(live)
    return all(sum(1 for s in cluster.statuses(i).values() if s == "alive") == n for i in live)


def settled(cluster, live, timeout=60):
    """The Raft leader every agent of `live` names once they all list each other alive and the
    group has all its voters (killing a leader before its voters were promoted leaves the
    survivors nobody to elect)."""
    took = wait_until(lambda: converged(cluster, live) and cluster.raft_leader(live), timeout, every=0.1)
    if took is None:
        raise SystemExit("rover-agent: no agreed Raft leader with all its voters\n" + cluster.tails())
    return cluster.raft_leader(live)


# The election gate counts a voter towards the majority only once SWIM has shown it alive this
# long (rover_agent::leadership::gate's ELECTION_SETTLE_MS, a rule for heals).
ELECTION_SETTLE_S = 5.0


def alive_for(cluster, live, seconds):
    """Whether every agent of `live` lists every other one alive for at least `seconds`."""
    now_ms = time.time() * 1000
    for i in live:
        members = cluster.request(i, "GET", "/v1/members") or []
        seen = {m["name"]: m for m in members}
        for j in live:
            m = seen.get(cluster.names[j])
            if j != i and (m is None or m.get("status") != "alive"
                           or now_ms - (m.get("since_ms") or now_ms) < seconds * 1000):
                return False
    return True


def leader_failover(out, binary, n, runs):
    """kill -9 of the Raft leader of a settled group (every voter alive in SWIM for the gate's
    settle time: a leader killed right after the group formed waits for that first), until
    every survivor names one new leader."""
    values = []
    for run in range(runs):
        cluster = up_or_stopped(RoverCluster(binary, n))
        try:
            live = list(range(n))
            settled(cluster, live)
            if wait_until(lambda: alive_for(cluster, live, ELECTION_SETTLE_S + 0.5), 30, every=0.2) is None:
                raise SystemExit("rover-agent: members never alive for the settle time\n" + cluster.tails())
            old = settled(cluster, live)
            victim = cluster.names.index(old)
            cluster.kill(victim)
            t0 = time.monotonic()
            survivors = [i for i in live if i != victim]
            if wait_until(lambda: cluster.raft_leader(survivors, voters=0) not in (None, old), 60) is None:
                raise SystemExit("rover-agent: no new leader\n" + cluster.tails())
            took = time.monotonic() - t0
            values.append(took)
            out.sample("leader_failover", n, TOOL, took, "s", run=run)
        finally:
            cluster.stop()
    out.summary("leader_failover", n, TOOL, values, "s")


def fallback(out, binary, runs):
    values = []
    for run in range(runs):
        cluster = up_or_stopped(RoverCluster(binary, 3))
        try:
            settled(cluster, [0, 1, 2])
            for i in (1, 2):
                cluster.kill(i)
            t0 = time.monotonic()

            def survivor_leads():
                view = cluster.leader(0)
                return view.get("mode") == "fallback" and view.get("is_me")
            if wait_until(survivor_leads, 90, every=0.1) is None:
                raise SystemExit("rover-agent: the survivor never fell back\n" + cluster.tails())
            took = time.monotonic() - t0
            values.append(took)
            out.sample("fallback_leader", 3, TOOL, took, "s", run=run)
        finally:
            cluster.stop()
    out.summary("fallback_leader", 3, TOOL, values, "s", fallback_after="20s")


def email_config(port):
    return f"""[[notify.email]]
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
from = "rover@example.org"
to = ["ops@example.org"]
"""


def notify(out, binary, runs):
    sink = SmtpSink()
    values, counts = [], []
    try:
        for run in range(runs):
            cluster = up_or_stopped(RoverCluster(binary, 3, config=email_config(sink.port)))
            try:
                live = [0, 1, 2]
                leader = settled(cluster, live)
                victim = next(i for i in live if cluster.names[i] != leader)
                name = cluster.names[victim]
                cluster.kill(victim)
                t0 = time.monotonic()
                wanted = f"rover: DOWN {name}"
                if wait_until(lambda: any(s == wanted for _, s in sink.since(t0)), 60, every=0.05) is None:
                    got = [s for _, s in sink.since(t0)]
                    raise SystemExit(f"no {wanted!r} email within 60 s (got {got})\n" + cluster.tails(30))
                arrived = min(at for at, s in sink.since(t0) if s == wanted)
                took = arrived - t0
                time.sleep(max(0.0, arrived + 10 - time.monotonic()))  # the 10 s counting window
                window = [(at, s) for at, s in sink.since(t0) if at <= arrived + 10]
                values.append(took)
                counts.append(len(window))
                out.sample("kill_to_email", 3, TOOL, took, "s", run=run, leader=leader, killed=name,
                           messages=len(window), subjects=[s for _, s in window])
            finally:
                cluster.stop()
            with sink.lock:
                sink.messages.clear()
    finally:
        sink.stop()
    out.summary("kill_to_email", 3, TOOL, values, "s", messages_per_kill=counts, group_wait="5s")
