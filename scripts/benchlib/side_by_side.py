"""The side-by-side scenarios: the same N, the same loopback, default LAN timings, rover-agent
and Serf one after the other in one run; each prints its runs, its median, and the rover/serf
ratio of medians.

  join         N agents started alone, then all joined through one seed at once: seconds until
               every agent has listed N alive
  failure      kill -9 of one agent (3 kills in a row, one cluster): seconds until every
               survivor lists it failed
  dissemination  `alert raise` (rover-agent) vs `serf event` (Serf) on one agent: seconds until
               every agent has it
  idle         per agent (mean over the cluster's agents), over one window (clusters of each tool
               idle side by side): RSS, CPU seconds, bytes sent per second (each tool's own
               counters: rover-agent's gossip + cluster-port counters; memberlist's udp.sent +
               tcp.sent via statsd)

Agents are polled round-robin, one request at a time over kept-alive connections, so that the
polling itself costs the agents little; a time is when the last agent was first seen to satisfy
the condition. Serf's user events are streamed (RPC `stream`), so Serf's dissemination times are
exact while rover-agent's include up to one polling round (a few ms per agent polled).
"""
import concurrent.futures, statistics, time

from .common import proc_stats, wait_until
from .rover import RoverCluster
from .serf import SerfCluster, UserEventWatch

TOOLS = ("rover-agent", "serf")


def start(tool, binary, n):
    """N agents of `tool`, each started alone (Serf's `-join` at start gives up at once when the
    seed is not listening yet), answering their API."""
    cluster = RoverCluster(binary, n, join_at_start=False) if tool == "rover-agent" else SerfCluster(n)
    return up_or_stopped(cluster)


def up_or_stopped(cluster, timeout=60):
    """`cluster` once every agent answers; otherwise it is stopped and the run fails."""
    try:
        if cluster.wait_up(timeout) is None:
            raise SystemExit(f"{cluster.tool}: agents did not come up in {timeout} s\n" + cluster.tails())
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_joined(tool, binary, n):
    """N agents of `tool` joined through the first and listing each other alive."""
    cluster = start(tool, binary, n)
    try:
        join_all(cluster, n)
        converge(cluster, list(range(n)))
    except BaseException:
        cluster.stop()
        raise
    return cluster


def join_all(cluster, n):
    """Every agent but the first asked at once to join through the first."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(32, n)) as pool:
        joined = list(pool.map(lambda i: cluster.join(i, 0), range(1, n)))
    if not all(joined):
        raise SystemExit(f"{cluster.tool}: a join was refused\n" + cluster.tails())


def first_seen(indices, satisfied, t0, timeout):
    """{index: seconds after t0 when `satisfied(index)` first held}, polling the indices not yet
    satisfied in turn; None if some index never did within `timeout`."""
    times, pending = {}, list(indices)
    while pending:
        for i in list(pending):
            if satisfied(i):
                times[i] = time.monotonic() - t0
                pending.remove(i)
        if time.monotonic() - t0 > timeout:
            return None
        if pending:
            time.sleep(0.002)
    return times


def alive_count(cluster, i):
    return sum(1 for status in cluster.statuses(i).values() if status == "alive")


def converge(cluster, live, timeout=150):
    n = len(live)
    took = wait_until(lambda: all(alive_count(cluster, i) == n for i in live), timeout, every=0.1)
    if took is None:
        raise SystemExit(f"{cluster.tool}: {n} agents did not converge in {timeout} s\n" + cluster.tails())


def join_convergence(out, binary, tool, n, runs):
    values = []
    for run in range(runs):
        cluster = start(tool, binary, n)
        try:
            t0 = time.monotonic()
            join_all(cluster, n)
            seen = first_seen(range(n), lambda i: alive_count(cluster, i) == n, t0, 150)
            if seen is None:
                raise SystemExit(f"{tool}: {n} agents did not converge\n" + cluster.tails())
            took = max(seen.values())
            values.append(took)
            out.sample("join_convergence", n, tool, took, "s", run=run)
        finally:
            cluster.stop()
    out.summary("join_convergence", n, tool, values, "s")


def failure_detection(out, binary, tool, n, kills):
    cluster = start_joined(tool, binary, n)
    values = []
    try:
        live = list(range(n))
        for run in range(kills):
            victim = live[len(live) // 2]
            name = cluster.names[victim]
            cluster.kill(victim)
            t0 = time.monotonic()
            live.remove(victim)
            seen = first_seen(live, lambda i: cluster.statuses(i).get(name) == "failed", t0, 90)
            if seen is None:
                raise SystemExit(f"{tool}: survivors never listed {name} failed\n" + cluster.tails())
            took = max(seen.values())
            values.append(took)
            out.sample("failure_detection", n, tool, took, "s", run=run, killed=name)
    finally:
        cluster.stop()
    out.summary("failure_detection", n, tool, values, "s")


def dissemination(out, binary, tool, n, events):
    cluster = start_joined(tool, binary, n)
    watch = None
    values = []
    try:
        if tool == "serf":
            watch = UserEventWatch(cluster)
        for run in range(events):
            name = f"bench{run}"
            t0 = time.monotonic()
            if tool == "serf":
                sent = cluster.send_event(0, name)
                arrived = lambda i: i in watch.received(name)
            else:
                sent = cluster.raise_alert(0, name)
                arrived = lambda i: cluster.has_alert(i, name)
            if not sent:
                raise SystemExit(f"{tool}: could not send {name}\n" + cluster.tails())
            seen = first_seen(range(n), arrived, t0, 60)
            if seen is None:
                raise SystemExit(f"{tool}: {name} did not reach every agent\n" + cluster.tails())
            if tool == "serf":  # exact arrival times from the stream
                seen = {i: at - t0 for i, at in watch.received(name).items()}
            took = max(seen.values())
            values.append(took)
            out.sample("dissemination", n, tool, took, "s", run=run)
    finally:
        if watch is not None:
            watch.stop()
        cluster.stop()
    out.summary("dissemination", n, tool, values, "s", what="alert raise" if tool == "rover-agent" else "serf event")


def idle(out, binary, n, window, runs):
    """`runs` clusters of each tool, all idle through one shared window (idle agents barely
    touch the CPU, so running them at once changes nothing but the wall time). A run's figure
    is the mean over its agents (a leader's extra traffic counts, as it costs the cluster);
    each run's line also gives the median, min and max agent."""
    per_run = {tool: {"rss": [], "cpu": [], "bytes": []} for tool in TOOLS}
    clusters = []
    try:
        for run in range(runs):
            for tool in TOOLS:
                clusters.append((run, tool, start_joined(tool, binary, n)))
        for run, tool, cluster in clusters:
            if tool == "rover-agent" and wait_until(lambda: cluster.raft_leader(range(n)), 60, every=0.2) is None:
                raise SystemExit("rover-agent: no Raft leader with its voters\n" + cluster.tails())
        before = [[(proc_stats(c.pid(i)), c.bytes_out(i)) for i in range(n)] for _, _, c in clusters]
        time.sleep(window)  # the measurement window itself, not a wait for a condition
        for (run, tool, cluster), earlier in zip(clusters, before):
            after = [(proc_stats(cluster.pid(i)), cluster.bytes_out(i)) for i in range(n)]
            cpu = [a[0][0] - b[0][0] for a, b in zip(after, earlier)]
            rss = [a[0][1] for a in after]
            rate = [(a[1] - b[1]) / window for a, b in zip(after, earlier)]
            for key, values, unit in (("rss", rss, "KiB"), ("cpu", cpu, f"cpu-s/{window}s"),
                                      ("bytes", rate, "B/s")):
                mean = statistics.fmean(values)
                per_run[tool][key].append(mean)
                out.sample(f"idle_{key}", n, tool, mean, unit, run=run, per_agent="mean",
                           median=round(statistics.median(values), 4), min=round(min(values), 4),
                           max=round(max(values), 4))
    finally:
        for _, _, cluster in clusters:
            cluster.stop()
    for key, unit in (("rss", "KiB"), ("cpu", f"cpu-s/{window}s"), ("bytes", "B/s")):
        for tool in TOOLS:
            out.summary(f"idle_{key}", n, tool, per_run[tool][key], unit, per_agent="mean")
        out.ratio(f"idle_{key}", n, unit)


# The scenario names in the output, by the names `--scenario` takes.
NAMES = {"join": "join_convergence", "failure": "failure_detection", "dissemination": "dissemination"}
