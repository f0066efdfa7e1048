"""The notification ledger's cost on rover-agent alone (Serf has no ledger):

  ledger_size  one agent (a Raft group of one, the console channel, group_wait 1 s) raises and
               clears alerts in rounds of 100, each round until the ledger has every incident
               of it closed; the size of its data dir after 100, 1 000 and 10 000 alerts
               (bytes, and bytes per alert); then the agent is restarted with
               `incidents.retention = 60s` and measured again once its ledger has forgotten
               them. A checkpoint not reached within --ledger-minutes is reported as skipped
               with how far it got and the size then.
  engine_idle  3 joined agents with an exec channel, idle for the window: CPU seconds per
               agent, the leader apart (only the leader's engine does more than look at the
               leadership status), from every thread's schedstat (ns); the engine is the part
               that changes between builds, the rest idles the same.
"""
import os, signal, statistics, subprocess, time

from .common import wait_until
from .rover import RoverCluster

TOOL = "rover-agent"
ROUND = 100
CHECKPOINTS = (100, 1_000, 10_000)
RETENTION_S = 60


def data_dir_bytes(path):
    """Bytes the data dir takes on disk (du: allocated blocks, as a user sees it)."""
    out = subprocess.run(["du", "-sb", "--apparent-size", path], capture_output=True, text=True)
    apparent = int(out.stdout.split()[0]) if out.returncode == 0 else 0
    out = subprocess.run(["du", "-sB1", path], capture_output=True, text=True)
    allocated = int(out.stdout.split()[0]) if out.returncode == 0 else 0
    return apparent, allocated


def ledger_states(cluster):
    """{incident id: state} of the agent's Raft ledger, or None if it cannot answer."""
    view = cluster.request(0, "GET", "/v1/incidents")
    if view is None:
        return None
    return {i.get("id"): i.get("state") for i in view.get("incidents", [])}


def round_states(cluster, names):
    """The states of the incidents of the alerts `names` (ids `alert/<team>/<host>/<name>/..`),
    or None if the agent cannot answer."""
    states = ledger_states(cluster)
    if states is None:
        return None
    wanted = set(names)
    return [state for id, state in states.items()
            if len(id.split("/")) > 3 and id.split("/")[3] in wanted]


def clear_alert(cluster, name):
    return cluster.request(0, "POST", "/v1/alerts/clear", {"name": name}, token=True) is not None


def one_round(cluster, names):
    """Raises `names`, waits until each has an announced incident, clears them, waits until
    every one is closed. False if the agent stopped answering in time."""
    for name in names:
        if not cluster.raise_alert(0, name):
            raise SystemExit(f"raising {name} failed\n" + cluster.tails())

    # Every incident of the round is announced before its alert clears (a flap shorter than
    # group_wait would be closed without a message).
    def announced():
        states = round_states(cluster, names)
        return states is not None and len(states) == len(names) and "Open" not in states
    if wait_until(announced, 300, every=1) is None:
        return False
    for name in names:
        if not clear_alert(cluster, name):
            raise SystemExit(f"clearing {name} failed\n" + cluster.tails())

    def closed():
        states = round_states(cluster, names)
        return states is not None and all(state == "Closed" for state in states)
    return wait_until(closed, 300, every=1) is not None


def restart_with(cluster, config):
    """Stops agent 0 gracefully (SIGTERM) and starts it again on its data dir with `config`."""
    cmd = list(cluster.procs[0].args)
    with open(cmd[cmd.index("--config") + 1], "w") as f:
        f.write(config)
    cluster.kill(0, signal.SIGTERM)
    cluster.processes.procs.remove(cluster.procs[0])
    if cluster.conns[0] is not None:
        cluster.conns[0].close()
        cluster.conns[0] = None
    cluster.procs[0] = cluster.processes.start(cmd, os.path.join(cluster.dir, "r0-restarted.log"))
    if cluster.wait_up(60) is None:
        raise SystemExit("rover-agent did not restart\n" + cluster.tails())


def ledger_size(out, binary, minutes, retention):
    """Growth with the default retention (30 d: nothing is forgotten during the run); then,
    with `retention`, the agent is restarted with `incidents.retention = 60s` and the size is
    measured once the ledger has forgotten every closed incident (a build without the key
    refuses the config: run it with --no-retention)."""
    base = "[notify]\ngroup_wait = \"1s\"\n"
    cluster = RoverCluster(binary, 1, config=base)
    deadline = time.monotonic() + minutes * 60
    try:
        if cluster.wait_up(60) is None:
            raise SystemExit("rover-agent did not start\n" + cluster.tails())
        if wait_until(lambda: cluster.leader(0).get("mode") == "raft", 60, every=0.1) is None:
            raise SystemExit("rover-agent: no Raft leader\n" + cluster.tails())
        done, started = 0, time.monotonic()
        for target in CHECKPOINTS:
            while done < target and time.monotonic() < deadline:
                names = [f"bench-{done + k}" for k in range(ROUND)]
                if not one_round(cluster, names):
                    if time.monotonic() >= deadline:
                        break
                    raise SystemExit(f"the round after {done} alerts never closed\n" + cluster.tails(40))
                done += ROUND
            time.sleep(2)  # sled flushes every 500 ms and the agent every second
            apparent, allocated = data_dir_bytes(cluster.data_dir(0))
            if done < target:
                out.line(scenario="ledger_size_skipped", n=target, tool=TOOL, reached=done,
                         value=allocated, unit="B", apparent=apparent,
                         per_alert=round(allocated / done) if done else None,
                         minutes=minutes, reason="checkpoint not reached in time")
                break
            out.line(scenario="ledger_size", n=target, tool=TOOL, value=allocated, unit="B",
                     apparent=apparent, per_alert=round(allocated / target),
                     elapsed_s=round(time.monotonic() - started))
        if retention:
            restart_with(cluster, base + f"\n[incidents]\nretention = \"{RETENTION_S}s\"\n")

            def forgotten():
                states = ledger_states(cluster)
                return states is not None and len(states) == 0
            # The last incidents ended just now: they go retention (+ a tenth) later.
            took = wait_until(forgotten, RETENTION_S * 2 + 60, every=1)
            time.sleep(2)
            apparent, allocated = data_dir_bytes(cluster.data_dir(0))
            states = ledger_states(cluster)
            out.line(scenario="ledger_size_after_retention", n=done, tool=TOOL, value=allocated, unit="B",
                     apparent=apparent, incidents_left=len(states) if states is not None else None,
                     retention_s=RETENTION_S, forgot_all=took is not None)
            # sled never shrinks its file: the agent's housekeeping rewrites it when bloated, at
            # start and every 10 minutes; a restart runs it now.
            before = allocated
            restart_with(cluster, base + f"\n[incidents]\nretention = \"{RETENTION_S}s\"\n")
            shrank = wait_until(lambda: data_dir_bytes(cluster.data_dir(0))[1] < before / 2, 60, every=1)
            apparent, allocated = data_dir_bytes(cluster.data_dir(0))
            out.line(scenario="ledger_size_after_retention_and_rewrite", n=done, tool=TOOL, value=allocated,
                     unit="B", apparent=apparent, rewritten=shrank is not None)
    finally:
        cluster.stop()


def cpu_seconds(pid):
    """CPU time of every thread of `pid` so far, in seconds, from schedstat (ns)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def engine_idle(out, binary, window, runs=3):
    """`runs` times: 3 agents with an exec channel, joined and settled, then idle for
    `window` seconds; the leader's CPU and the followers' mean, per run and their medians."""
    leaders, followers = [], []
    for run in range(runs):
        leader, follower = idle_run(out, binary, window, run)
        leaders.append(leader)
        followers.append(follower)
    unit = f"cpu-s/{window}s"
    out.line(scenario="engine_idle_cpu_leader", n=3, tool=TOOL, value=statistics.median(leaders),
             unit=unit, min=min(leaders), max=max(leaders), runs=runs)
    out.line(scenario="engine_idle_cpu_follower", n=3, tool=TOOL, value=statistics.median(followers),
             unit=unit, min=min(followers), max=max(followers), runs=runs)


def idle_run(out, binary, window, run):
    config = "[[notify.exec]]\ncommand = [\"/bin/true\"]\n"
    cluster = RoverCluster(binary, 3, config=config)
    try:
        if cluster.wait_up(60) is None:
            raise SystemExit("rover-agent did not start\n" + cluster.tails())

        def settled():
            views = [cluster.leader(i) for i in range(3)]
            return len({v.get("leader") for v in views}) == 1 and all(v.get("mode") == "raft" for v in views)
        if wait_until(settled, 60, every=0.2) is None:
            raise SystemExit("rover-agent: no Raft leader\n" + cluster.tails())
        time.sleep(5)  # promotions and the first samples settle
        before = [cpu_seconds(cluster.pid(i)) for i in range(3)]
        time.sleep(window)  # the measurement window itself, not a wait for a condition
        after = [cpu_seconds(cluster.pid(i)) for i in range(3)]
        leader = cluster.leader(0).get("leader")
        used = {cluster.names[i]: round(a - b, 4) for i, (a, b) in enumerate(zip(after, before))}
        others = [v for name, v in used.items() if name != leader]
        follower = round(sum(others) / len(others), 4)
        out.line(scenario="engine_idle_cpu_run", n=3, tool=TOOL, value=used[leader], unit=f"cpu-s/{window}s",
                 run=run, leader=leader, follower_mean=follower, per_agent=used)
        return used[leader], follower
    finally:
        cluster.stop()
