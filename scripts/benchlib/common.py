"""Ports, processes, bounded waits and the JSON-line output shared by every scenario.

Every process a benchmark starts is recorded by PID in a `Processes` and stopped by that PID;
every wait is bounded by a timeout and returns None when it runs out.
"""
import atexit, json, os, signal, socket, statistics, subprocess, sys, time

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


# Every process any benchmark of this interpreter started, so that an abort anywhere (an
# exception, Ctrl-C, SIGTERM) still stops them all, each by its own PID: see stop_on_exit.
_every_process = []


def port_taken(log_path):
    """Whether an agent's log says it could not bind a port another program holds."""
    try:
        with open(log_path, errors="replace") as f:
            text = f.read().lower()
    except OSError:
        return False
    return any(sign in text for sign in ("address already in use", "os error 98", "eaddrinuse"))


def stop_every_process():
    """Stops every process still running that this interpreter started, by PID."""
    for proc in list(_every_process):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass


def stop_on_exit():
    """Makes sure no agent outlives the benchmark: at interpreter exit (after an exception or
    Ctrl-C too), and on SIGTERM or SIGHUP (turned into SystemExit, so `finally` blocks run),
    every process started is stopped by PID."""
    atexit.register(stop_every_process)

    def leave(signum, _frame):
        raise SystemExit(128 + signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, leave)


class Processes:
    """Processes started by a benchmark, each stopped by its own PID."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, log_path, env=None):
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        self.procs.append(proc)
        _every_process.append(proc)
        return proc

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
            if proc in _every_process:
                _every_process.remove(proc)


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
    `<name>.log` per agent), `processes` (a Processes) and `tool`; a subclass adds `up(i)`,
    `launch(i)` (start agent `i` from its fields) and `new_ports(i)` (pick fresh ports for it)."""

    # An agent that exits at start because another program took its port is started again on
    # new ports, this many times at most.
    BIND_RETRIES = 3

    def log_path(self, i):
        return os.path.join(self.dir, self.names[i] + ".log")

    def wait_up(self, timeout=60):
        """Seconds until every agent answers; None if `timeout` passed. An agent that exited
        because its port was taken is started again on new ports; one that exited for any
        other reason fails the run (SystemExit with every agent's log tail)."""
        def up():
            for i, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    self.rebind(i)
            return all(self.up(i) for i in range(len(self.procs)))
        took = wait_until(up, timeout, every=0.05)
        if took is not None:
            self.after_rebind()
        return took

    def rebind(self, i):
        retries = getattr(self, "bind_retries", {})
        self.bind_retries = retries
        if not port_taken(self.log_path(i)) or retries.get(i, 0) >= self.BIND_RETRIES:
            raise SystemExit(f"{self.tool}: agent {self.names[i]} exited at start\n" + self.tails())
        retries[i] = retries.get(i, 0) + 1
        os.replace(self.log_path(i), self.log_path(i) + f".port-taken-{retries[i]}")
        print(f"{self.tool}: {self.names[i]} found its port taken; starting it again on new ports",
              file=sys.stderr)
        self.new_ports(i)
        self.procs[i] = self.launch(i)

    def after_rebind(self):
        """Called once every agent answers (a subclass re-joins agents whose seed moved)."""

    def kill(self, i, sig=signal.SIGKILL):
        self.processes.kill(self.procs[i], sig)

    def signal(self, i, sig):
        os.kill(self.procs[i].pid, sig)

    def tails(self, lines=15):
        """The last lines of every agent's log, for a failure message."""
        out = []
        for name in self.names:
            path = os.path.join(self.dir, name + ".log")
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
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
