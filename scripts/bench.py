#!/usr/bin/env python3
"""rover-agent benchmarks on loopback, printed as JSON lines.

Scenarios (this version measures rover-agent alone; the Serf side comes with the benchmark
issue):
  failure  kill -9 of one agent of N, seconds until every survivor lists it failed
  idle     RSS (KiB) and CPU seconds per agent over an idle window
  alert    `alert raise` on one agent of N until every agent lists it (10 runs)
  leader   kill -9 of the Raft leader of 5 until every survivor names one new Raft leader;
           3 agents, kill 2: seconds until the survivor leads as fallback (default 20 s delay)
  notify   kill -9 of a non-leader of 3 agents until its `rover: DOWN <name>` email reaches a
           real SMTP server (aiosmtpd, in this process; default group_wait 5 s), and how many
           emails arrive from the kill until 10 s after that one (5 runs)

Every process started is recorded by PID and stopped by that PID; every wait is bounded.
"""
import argparse, email, email.policy, json, os, shutil, signal, socket, statistics, subprocess, sys, \
    tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_gossip_port():
    """A port free for both UDP (gossip) and TCP (cluster port) a moment ago."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise SystemExit("no port free for both UDP and TCP")


class Agents:
    def __init__(self, binary, n, profile=None, config=None):
        self.binary, self.dir = binary, tempfile.mkdtemp(prefix="rover-bench-")
        self.key = os.path.join(self.dir, "key")
        with open(self.key, "w") as f:
            f.write(subprocess.check_output([binary, "keygen"], text=True))
        config_file = None
        if config is not None:
            config_file = os.path.join(self.dir, "config.toml")
            with open(config_file, "w") as f:
                f.write(config)
        self.procs, self.apis, self.names = [], [], []
        seed = None
        for i in range(n):
            name, gossip, api = f"b{i}", free_gossip_port(), free_port(socket.SOCK_STREAM)
            cmd = [binary, "agent", "--node", name, "--bind", f"127.0.0.1:{gossip}",
                   "--api", f"127.0.0.1:{api}", "--data-dir", os.path.join(self.dir, name),
                   "--key-file", self.key]
            if profile:
                cmd += ["--profile", profile]
            if config_file:
                cmd += ["--config", config_file]
            if seed:
                cmd += ["--join", seed]
            log = open(os.path.join(self.dir, name + ".log"), "w")
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log))
            self.apis.append(f"127.0.0.1:{api}")
            self.names.append(name)
            seed = seed or f"127.0.0.1:{gossip}"

    def members(self, i):
        out = subprocess.run([self.binary, "members", "--format", "json", "--api", self.apis[i]],
                             capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else []

    def statuses(self, i):
        return {m["name"]: m["status"] for m in self.members(i)}

    def wait(self, condition, timeout):
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if condition():
                return time.monotonic() - start
            time.sleep(0.05)
        return None

    def converged(self, live):
        return all(sum(1 for s in self.statuses(i).values() if s == "alive") == len(live) for i in live)

    def tails(self, lines=15):
        """The last lines of every agent's log, for a failure message."""
        out = []
        for name in self.names:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                out.append(f"--- {name} ---\n" + "".join(f.readlines()[-lines:]))
        return "\n".join(out)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def emit(scenario, n, value, unit, **extra):
    line = {"scenario": scenario, "n": n, "tool": "rover-agent", "value": round(value, 4), "unit": unit,
            "cores": os.cpu_count()}
    line.update(extra)
    print(json.dumps(line), flush=True)


def failure(binary, n, runs):
    times = []
    for run in range(runs):
        agents = Agents(binary, n)
        try:
            live = list(range(n))
            if agents.wait(lambda: agents.converged(live), 60) is None:
                raise SystemExit("agents did not converge")
            victim = n // 2
            name = agents.names[victim]
            agents.procs[victim].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            agents.procs[victim].wait()
            survivors = [i for i in live if i != victim]
            took = agents.wait(lambda: all(agents.statuses(i).get(name) == "failed" for i in survivors), 60)
            if took is None:
                raise SystemExit("survivors never listed the victim failed")
            took = time.monotonic() - killed
            times.append(took)
            emit("failure_detection_run", n, took, "s", run=run)
        finally:
            agents.stop()
    emit("failure_detection", n, statistics.median(times), "s", min=round(min(times), 3),
         max=round(max(times), 3), runs=runs)


def alert_propagation(binary, n, runs):
    """`alert raise` on one agent until every agent lists it, `runs` times in one cluster."""
    agents = Agents(binary, n)
    try:
        live = list(range(n))
        if agents.wait(lambda: agents.converged(live), 60) is None:
            raise SystemExit("agents did not converge")
        token_dir = os.path.join(agents.dir, agents.names[0])
        times = []
        for run in range(runs):
            name = f"bench{run}"
            start = time.monotonic()
            subprocess.run([binary, "alert", "raise", name, "--summary", "bench", "--api", agents.apis[0],
                            "--data-dir", token_dir], check=True, capture_output=True)

            def everywhere():
                for api in agents.apis:
                    out = subprocess.run([binary, "alerts", "--format", "json", "--api", api],
                                         capture_output=True, text=True)
                    if out.returncode != 0 or not any(a["name"] == name for a in json.loads(out.stdout)):
                        return False
                return True
            if agents.wait(everywhere, 30) is None:
                raise SystemExit(f"alert {name} did not reach every agent")
            took = time.monotonic() - start
            times.append(took)
            emit("alert_propagation_run", n, took, "s", run=run)
        emit("alert_propagation", n, statistics.median(times), "s", min=round(min(times), 3),
             max=round(max(times), 3), runs=runs)
    finally:
        agents.stop()


def proc_stats(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss


def idle(binary, n, seconds):
    agents = Agents(binary, n)
    try:
        live = list(range(n))
        if agents.wait(lambda: agents.converged(live), 60) is None:
            raise SystemExit("agents did not converge")
        before = [proc_stats(p.pid) for p in agents.procs]
        tcp0 = [info_of(binary, a)["cluster_port"] for a in agents.apis]
        info0 = [json.loads(subprocess.check_output([binary, "info", "--format", "json", "--api", a]))["counters"] for a in agents.apis]
        time.sleep(seconds)  # the measurement window itself, not a wait for a condition
        after = [proc_stats(p.pid) for p in agents.procs]
        info1 = [json.loads(subprocess.check_output([binary, "info", "--format", "json", "--api", a]))["counters"] for a in agents.apis]
        cpu = [a[0] - b[0] for a, b in zip(after, before)]
        rss = [a[1] for a in after]
        out_pps = [(i1["packets_out"] - i0["packets_out"]) / seconds for i0, i1 in zip(info0, info1)]
        out_bps = [(i1["bytes_out"] - i0["bytes_out"]) / seconds for i0, i1 in zip(info0, info1)]
        emit("idle_rss", n, statistics.median(rss), "KiB", min=min(rss), max=max(rss))
        emit("idle_cpu", n, statistics.median(cpu), f"cpu-s/{seconds}s", min=min(cpu), max=max(cpu))
        emit("idle_packets_out", n, statistics.median(out_pps), "datagrams/s")
        emit("idle_bytes_out", n, statistics.median(out_bps), "B/s")
        tcp = [info_of(binary, a)["cluster_port"] for a in agents.apis]
        raft_fps = [(t1["raft_frames_out"] - t0["raft_frames_out"]) / seconds for t0, t1 in zip(tcp0, tcp)]
        raft_bps = [(t1["raft_bytes_out"] - t0["raft_bytes_out"]) / seconds for t0, t1 in zip(tcp0, tcp)]
        emit("idle_raft_frames_out", n, statistics.mean(raft_fps), "frames/s", min=round(min(raft_fps), 2),
             max=round(max(raft_fps), 2))
        emit("idle_raft_bytes_out", n, statistics.mean(raft_bps), "B/s", min=round(min(raft_bps), 1),
             max=round(max(raft_bps), 1))
    finally:
        agents.stop()


def info_of(binary, api):
    return json.loads(subprocess.check_output([binary, "info", "--format", "json", "--api", api]))


def leader_of(binary, api):
    out = subprocess.run([binary, "leader", "--format", "json", "--api", api], capture_output=True, text=True)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def agreed_leader(agents, live):
    views = [leader_of(agents.binary, agents.apis[i]) for i in live]
    names = {v.get("leader") for v in views}
    if len(names) == 1 and None not in names and all(v.get("mode") == "raft" for v in views):
        return names.pop()
    return None


def leader_failover(binary, n, runs):
    times = []
    for run in range(runs):
        agents = Agents(binary, n)
        try:
            live = list(range(n))
            if agents.wait(lambda: agents.converged(live) and agreed_leader(agents, live), 60) is None:
                raise SystemExit("no leader\n" + agents.tails())
            old = agreed_leader(agents, live)
            victim = agents.names.index(old)
            agents.procs[victim].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            agents.procs[victim].wait()
            survivors = [i for i in live if i != victim]
            if agents.wait(lambda: agreed_leader(agents, survivors) not in (None, old), 60) is None:
                raise SystemExit("no new leader\n" + agents.tails())
            took = time.monotonic() - killed
            times.append(took)
            emit("leader_failover_run", n, took, "s", run=run)
        finally:
            agents.stop()
    emit("leader_failover", n, statistics.median(times), "s", min=round(min(times), 3),
         max=round(max(times), 3), runs=runs)


def fallback(binary, runs):
    times = []
    for run in range(runs):
        agents = Agents(binary, 3)
        try:
            live = [0, 1, 2]
            if agents.wait(lambda: agents.converged(live) and agreed_leader(agents, live), 60) is None:
                raise SystemExit("no leader\n" + agents.tails())
            for i in (1, 2):
                agents.procs[i].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            for i in (1, 2):
                agents.procs[i].wait()

            def survivor_leads():
                v = leader_of(binary, agents.apis[0])
                return v.get("mode") == "fallback" and v.get("is_me")
            if agents.wait(survivor_leads, 90) is None:
                raise SystemExit("the survivor never fell back")
            took = time.monotonic() - killed
            times.append(took)
            emit("fallback_leader_run", 3, took, "s", run=run)
        finally:
            agents.stop()
    emit("fallback_leader", 3, statistics.median(times), "s", min=round(min(times), 3),
         max=round(max(times), 3), runs=runs, fallback_after="20s")


class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 in this process; records every message's
    arrival (time.monotonic()) and subject."""

    def __init__(self):
        try:
            from aiosmtpd.controller import Controller
        except ImportError:
            raise SystemExit("the notify scenario needs aiosmtpd (Debian: python3-aiosmtpd); "
                             f"{sys.executable} cannot import it")
        self.lock, self.messages = threading.Lock(), []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                arrived = time.monotonic()
                raw = envelope.original_content or envelope.content
                subject = str(email.message_from_bytes(raw, policy=email.policy.default).get("subject", ""))
                with sink.lock:
                    sink.messages.append((arrived, subject))
                return "250 2.0.0 Ok: queued"

        last = None
        for _ in range(20):
            self.port = free_port(socket.SOCK_STREAM)
            self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                         ready_timeout=10)
            try:
                self.controller.start()
                return
            except Exception as e:  # the port was taken between free_port and start
                last = e
                self.controller.stop(no_assert=True)
        raise SystemExit(f"the SMTP sink did not start: {last}")

    def since(self, t):
        with self.lock:
            return [(at, subject) for at, subject in self.messages if at >= t]

    def stop(self):
        self.controller.stop()


def notify(binary, runs):
    """kill -9 of a non-leader of 3 until the `rover: DOWN <name>` email reaches the SMTP sink."""
    sink = SmtpSink()
    config = f"""[[notify.email]]
smtp_host = "127.0.0.1"
smtp_port = {sink.port}
tls = "none"
from = "rover@example.org"
to = ["ops@example.org"]
"""
    times, counts = [], []
    try:
        for run in range(runs):
            agents = Agents(binary, 3, config=config)
            try:
                live = [0, 1, 2]
                if agents.wait(lambda: agents.converged(live) and agreed_leader(agents, live), 60) is None:
                    raise SystemExit("no leader\n" + agents.tails())
                leader = agreed_leader(agents, live)
                victim = next(i for i in live if agents.names[i] != leader)
                name = agents.names[victim]
                before = len(sink.since(0))  # the sink is emptied after every run
                agents.procs[victim].send_signal(signal.SIGKILL)
                killed = time.monotonic()
                agents.procs[victim].wait()
                wanted = f"rover: DOWN {name}"
                if agents.wait(lambda: any(s == wanted for _, s in sink.since(killed)), 60) is None:
                    got = [s for _, s in sink.since(killed)]
                    raise SystemExit(f"no {wanted!r} email within 60 s (got {got})\n" + agents.tails(30))
                arrived = min(at for at, s in sink.since(killed) if s == wanted)
                took = arrived - killed
                time.sleep(max(0.0, arrived + 10 - time.monotonic()))  # the 10 s counting window
                window = [(at, s) for at, s in sink.since(killed) if at <= arrived + 10]
                times.append(took)
                counts.append(len(window))
                emit("notify_run", 3, took, "s", run=run, leader=leader, killed=name,
                     messages=len(window), subjects=[s for _, s in window], messages_before_kill=before)
            finally:
                agents.stop()
            with sink.lock:
                sink.messages.clear()
    finally:
        sink.stop()
    print(json.dumps({"scenario": "notify", "metric": "kill_to_email_s", "n": 3, "tool": "rover-agent",
                      "median": round(statistics.median(times), 4), "min": round(min(times), 4),
                      "max": round(max(times), 4), "runs": runs, "messages_per_kill": counts,
                      "group_wait": "5s", "cores": os.cpu_count()}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # cargo's own CARGO_TARGET_DIR, when set, is where bench.sh's build put the binary.
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
    parser.add_argument("--binary", default=os.path.join(target, "release/rover-agent"))
    parser.add_argument("--quick", action="store_true", help="fewer runs, shorter idle window")
    parser.add_argument("--scenario", choices=["failure", "idle", "alert", "leader", "notify", "all"], default="all")
    args = parser.parse_args()
    runs, window = (3, 15) if args.quick else (5, 60)
    if args.scenario in ("failure", "all"):
        failure(args.binary, 5, runs)
    if args.scenario in ("idle", "all"):
        idle(args.binary, 5, window)
    if args.scenario in ("alert", "all"):
        alert_propagation(args.binary, 5, 5 if args.quick else 10)
    if args.scenario in ("leader", "all"):
        leader_failover(args.binary, 5, runs)
        fallback(args.binary, 1 if args.quick else 3)
    if args.scenario in ("notify", "all"):
        notify(args.binary, 3 if args.quick else 5)


if __name__ == "__main__":
    main()
