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
        self.key = os.path.join(self.dir, "key")
        with open(self.key, "w") as f:
            f.write(subprocess.check_output([binary, "keygen"], text=True))
        config_file = None
        if config is not None:
            config_file = os.path.join(self.dir, "config.toml")
            with open(config_file, "w") as f:
                f.write(config)
        self.procs, self.apis, self.names, self.gossip, self.conns = [], [], [], [], []
        for i in range(n):
            name, gossip, api = f"r{i}", free_udp_tcp_port(), free_port()
            cmd = [binary, "agent", "--node", name, "--bind", f"127.0.0.1:{gossip}",
                   "--api", f"127.0.0.1:{api}", "--data-dir", self.data_dir(i), "--key-file", self.key]
            if profile:
                cmd += ["--profile", profile]
            if config_file:
                cmd += ["--config", config_file]
            if join_at_start and i > 0:
                cmd += ["--join", self.gossip[0]]
            self.procs.append(self.processes.start(cmd, os.path.join(self.dir, name + ".log")))
            self.apis.append(("127.0.0.1", api))
            self.names.append(name)
            self.gossip.append(f"127.0.0.1:{gossip}")
            self.conns.append(None)

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

    def stop(self):
        for conn in self.conns:
            if conn is not None:
                conn.close()
        self.processes.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)
