"""A cluster of rover-agent processes on 127.0.0.1, each read through its HTTP API over one
kept-alive connection (so that polling costs the agents little)."""
import http.client, json, os, shutil, subprocess, tempfile

from .common import AgentProcesses, Processes, free_port, free_udp_tcp_port

TOOL = "rover-agent"


class RoverCluster(AgentProcesses):
    tool = TOOL

    def __init__(self, binary, n, join_at_start=True, config=None, profile=None):
        """Starts `n` agents (default `lan` timings). With `join_at_start` each agent after the
        first is started with `--join <first>`; otherwise they start alone and `join_all` joins
        them."""
        self.binary, self.dir = binary, tempfile.mkdtemp(prefix="rover-bench-")
        self.processes = Processes()
        self.join_at_start, self.profile = join_at_start, profile
        self.key = os.path.join(self.dir, "key")
        with open(self.key, "w") as f:
            f.write(subprocess.check_output([binary, "keygen"], text=True))
        self.config_file = None
        if config is not None:
            self.config_file = os.path.join(self.dir, "config.toml")
            with open(self.config_file, "w") as f:
                f.write(config)
        self.procs, self.apis, self.names, self.gossip, self.conns = [], [], [], [], []
        self.seed_moved = False
        for i in range(n):
            self.names.append(f"r{i}")
            self.gossip.append(None)
            self.apis.append(None)
            self.conns.append(None)
            self.new_ports(i)
            self.procs.append(self.launch(i))

    def command(self, i, join=None):
        """The command line of agent `i` (joining through agent `join`, if given)."""
        cmd = [self.binary, "agent", "--node", self.names[i], "--bind", self.gossip[i],
               "--api", "%s:%d" % self.apis[i], "--data-dir", self.data_dir(i), "--key-file", self.key]
        if self.profile:
            cmd += ["--profile", self.profile]
        if self.config_file:
            cmd += ["--config", self.config_file]
        if join is not None:
            cmd += ["--join", self.gossip[join]]
        return cmd

    def launch(self, i, join=None, log_name=None):
        if join is None and self.join_at_start and i > 0:
            join = 0
        log = os.path.join(self.dir, (log_name or self.names[i]) + ".log")
        return self.processes.start(self.command(i, join), log)

    def new_ports(self, i):
        self.gossip[i] = f"127.0.0.1:{free_udp_tcp_port()}"
        self.apis[i] = ("127.0.0.1", free_port())
        self.forget_connection(i)
        if i == 0 and self.join_at_start and len(self.procs) > 1:
            self.seed_moved = True

    def after_rebind(self):
        """Agents started with `--join` the first agent's old port join its new one."""
        if self.seed_moved:
            self.seed_moved = False
            for i in range(1, len(self.procs)):
                self.join(i, 0)

    def restart(self, i, join):
        """Agent `i` started again as before (same name, ports, data dir, key, config), joining
        through agent `join`; its log goes to `<name>.restart.log`."""
        self.procs[i] = self.launch(i, join=join, log_name=self.names[i] + ".restart")
        self.forget_connection(i)

    def forget_connection(self, i):
        if self.conns[i] is not None:
            self.conns[i].close()
            self.conns[i] = None

    def data_dir(self, i):
        return os.path.join(self.dir, f"r{i}")

    def pid(self, i):
        return self.procs[i].pid

    # --- the API, over one kept-alive connection per agent ---

    def request(self, i, method, path, body=None, token=False):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            with open(os.path.join(self.data_dir(i), "token")) as f:
                headers["Authorization"] = "Bearer " + f.read().strip()
        data = json.dumps(body) if body is not None else None
        for attempt in (0, 1):  # a kept-alive connection the agent closed is reopened once
            if self.conns[i] is None:
                self.conns[i] = http.client.HTTPConnection(*self.apis[i], timeout=5)
            try:
                self.conns[i].request(method, path, body=data, headers=headers)
                response = self.conns[i].getresponse()
                payload = response.read()
                if response.status != 200:
                    return None
                return json.loads(payload)
            except (OSError, http.client.HTTPException, ValueError):
                self.conns[i].close()
                self.conns[i] = None
        return None

    def up(self, i):
        return self.request(i, "GET", "/v1/info") is not None

    def statuses(self, i):
        """{member name: alive|suspect|failed|left} as agent `i` lists them ({} if it cannot answer)."""
        members = self.request(i, "GET", "/v1/members")
        return {m["name"]: m["status"] for m in members} if members else {}

    def join(self, i, seed):
        return self.request(i, "POST", "/v1/join", {"seeds": [self.gossip[seed]]}, token=True) is not None

    def raise_alert(self, i, name):
        body = {"name": name, "severity": "warning", "summary": "bench"}
        return self.request(i, "POST", "/v1/alerts/raise", body, token=True) is not None

    def has_alert(self, i, name):
        alerts = self.request(i, "GET", "/v1/alerts")
        return bool(alerts) and any(a["name"] == name for a in alerts)

    def bytes_out(self, i):
        """Bytes this agent has sent: gossip datagrams plus cluster-port (TCP) frames, sealed,
        from its own counters."""
        info = self.request(i, "GET", "/v1/info")
        return info["counters"]["bytes_out"] + info["cluster_port"]["bytes_out"]

    def leader(self, i):
        return self.request(i, "GET", "/v1/leader") or {}

    def info(self, i):
        return self.request(i, "GET", "/v1/info") or {}

    def raft_leader(self, live, voters=None):
        """The Raft leader every agent of `live` names, once its group has all its voters
        (`voters`, default: as many as live agents, at most `election.max_voters` = 5), as every
        agent of `live` lists them; else None. A leader known before its voters were promoted
        has nobody to hand over to."""
        wanted = voters if voters is not None else min(len(live), 5)
        views = [self.leader(i) for i in live]
        names = {v.get("leader") for v in views}
        if len(names) != 1 or None in names or any(v.get("mode") != "raft" for v in views):
            return None
        if any(len(v.get("voters") or []) < wanted for v in views):
            return None
        return names.pop()

    def stop(self):
        for conn in self.conns:
            if conn is not None:
                conn.close()
        self.processes.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)
