"""Ports, processes, bounded waits and the JSON-line output shared by every scenario.

Every process a benchmark starts is recorded by PID in a `Processes` and stopped by that PID;
every wait is bounded by a timeout and returns None when it runs out.
"""
import json, os, signal, socket, statistics, subprocess, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Ports handed out by this process: the kernel may offer a just-closed port again, and two
# agents given one port would answer for each other.
_handed_out = set()


def free_port(kind=socket.SOCK_STREAM):
    for _ in range(100):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise SystemExit("no free port that was not handed out already")


def free_udp_tcp_port():
    """A port free for both UDP and TCP a moment ago (both tools gossip over UDP and sync over
    TCP on one port)."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if port in _handed_out:
                continue
            tcp.bind(("127.0.0.1", port))
            _handed_out.add(port)
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise SystemExit("no port free for both UDP and TCP")


class Processes:
    """Processes started by a benchmark, each stopped by its own PID."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, log_path, env=None):
        log = open(log_path, "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def all_running(self):
        return all(proc.poll() is None for proc in self.procs)

    def kill(self, proc, sig=signal.SIGKILL):
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop_all(self):
        for proc in self.procs:
            self.kill(proc)


def wait_until(condition, timeout, every=0.02):
    """Seconds until `condition()` held, or None after `timeout` seconds."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            return None
        time.sleep(every)


def proc_stats(pid):
    """(CPU seconds used so far by all its threads, RSS in KiB) of a running process, from
    /proc (CPU in clock ticks, 10 ms: schedstat would be finer but counts only one thread)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss

class AgentProcesses:
    """What a cluster of agent processes of either tool shares: `procs`, `names`, `dir` (with
    `<name>.log` per agent), `processes` (a Processes) and `tool`; a subclass adds `up(i)`."""

    def wait_up(self, timeout=60):
        """Seconds until every agent answers; None if one exited or `timeout` passed."""
        def up():
            if not self.processes.all_running():
                raise SystemExit(f"{self.tool}: an agent exited at start\n" + self.tails())
            return all(self.up(i) for i in range(len(self.procs)))
        return wait_until(up, timeout, every=0.05)

    def kill(self, i, sig=signal.SIGKILL):
        self.processes.kill(self.procs[i], sig)

    def signal(self, i, sig):
        os.kill(self.procs[i].pid, sig)

    def tails(self, lines=15):
        """The last lines of every agent's log, for a failure message."""
        out = []
        for name in self.names:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                out.append(f"--- {name} ---\n" + "".join(f.readlines()[-lines:]))
        return "\n".join(out)


class Output:
    """JSON lines on stdout, each with the machine's cores and both tools' versions; keeps the
    medians so that the rover/serf ratios and a closing table can be printed."""

    def __init__(self, versions):
        self.versions = versions
        self.medians = {}  # (scenario, n, unit) -> {tool: median}

    def line(self, **fields):
        fields.setdefault("cores", os.cpu_count())
        fields.setdefault("versions", self.versions)
        print(json.dumps(fields), flush=True)

    def sample(self, scenario, n, tool, value, unit, **extra):
        """One measured run."""
        self.line(scenario=scenario + "_run", n=n, tool=tool, value=round(value, 4), unit=unit, **extra)

    def summary(self, scenario, n, tool, values, unit, **extra):
        """The median of runs, kept for the ratio."""
        median = statistics.median(values)
        self.medians.setdefault((scenario, n, unit), {})[tool] = median
        self.line(scenario=scenario, n=n, tool=tool, value=round(median, 4), unit=unit,
                  min=round(min(values), 4), max=round(max(values), 4), runs=len(values), **extra)
        return median

    def ratio(self, scenario, n, unit):
        both = self.medians.get((scenario, n, unit), {})
        rover, serf = both.get("rover-agent"), both.get("serf")
        if rover is None or serf is None:
            return
        value = round(rover / serf, 3) if serf else None  # JSON has no infinity
        self.line(scenario=scenario, n=n, tool="rover/serf", value=value, unit="ratio",
                  rover=round(rover, 4), serf=round(serf, 4), measured_in=unit)

    def table(self):
        """A Markdown table of every side-by-side median and ratio, on stderr."""
        rows = ["| scenario | n | unit | rover-agent | serf | rover/serf |", "|---|---|---|---|---|---|"]
        for (scenario, n, unit), both in self.medians.items():
            rover, serf = both.get("rover-agent"), both.get("serf")
            if rover is None or serf is None:
                continue
            ratio = f"{rover / serf:.2f}" if serf else "-"
            rows.append(f"| {scenario} | {n} | {unit} | {fmt(rover)} | {fmt(serf)} | {ratio} |")
        return "\n".join(rows)


def fmt(value):
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def versions(rover_binary):
    rover = subprocess.run([rover_binary, "--version"], capture_output=True, text=True).stdout.strip()
    serf = subprocess.run(["serf", "version"], capture_output=True, text=True).stdout.splitlines()
    package = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "serf"], capture_output=True,
                             text=True).stdout.strip()
    return {"rover-agent": rover.split()[-1] if rover else "?",
            "serf": (serf[0] if serf else "?") + (f" (Debian {package})" if package else "")}
