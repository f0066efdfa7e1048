"""A cluster of HashiCorp Serf agents (Debian package `serf`) on 127.0.0.1, with their traffic
encrypted like rover-agent's, read through Serf's msgpack RPC, and their own byte counters
(memberlist.udp.sent, memberlist.tcp.sent) received as statsd lines on a loopback UDP port."""
import json, os, shutil, socket, subprocess, tempfile, threading, time

import msgpack

from .common import AgentProcesses, Processes, free_port, free_udp_tcp_port

TOOL = "serf"


class SerfRpc:
    """One RPC connection to a serf agent (the protocol of `serf members`, `serf event`...)."""

    def __init__(self, addr, timeout=5):
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
        self.seq = 0
        self.call("handshake", {"Version": 1}, has_body=False)

    def send(self, command, body=None):
        self.seq += 1
        data = msgpack.packb({"Command": command, "Seq": self.seq}, use_bin_type=False)
        if body is not None:
            data += msgpack.packb(body, use_bin_type=False)
        self.sock.sendall(data)
        return self.seq

    def next_object(self):
        while True:
            for obj in self.unpacker:
                return obj
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("serf closed the RPC connection")
            self.unpacker.feed(chunk)

    def call(self, command, body=None, has_body=True):
        seq = self.send(command, body)
        header = self.next_object()
        if header.get("Seq") != seq:
            raise ConnectionError(f"serf RPC answered seq {header.get('Seq')} to {seq}")
        if header.get("Error"):
            raise RuntimeError(f"serf {command}: {header['Error']}")
        return self.next_object() if has_body else {}

    def close(self):
        self.sock.close()


class StatsdCounters:
    """A statsd listener on 127.0.0.1 summing the counters one agent sends it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.totals, self.lock, self.running = {}, threading.Lock(), True
        self.thread = threading.Thread(target=self.receive, daemon=True)
        self.thread.start()

    def receive(self):
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            for line in data.decode(errors="replace").splitlines():
                name, _, rest = line.partition(":")
                value, _, kind = rest.partition("|")
                if kind.startswith("c"):
                    try:
                        number = float(value)
                    except ValueError:
                        continue
                    with self.lock:
                        self.totals[name] = self.totals.get(name, 0.0) + number

    def total(self, suffix):
        with self.lock:
            return sum(v for k, v in self.totals.items() if k.endswith(suffix))

    def stop(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


class SerfCluster(AgentProcesses):
    tool = TOOL

    def __init__(self, n, handlers=(), directory=None):
        """Starts `n` serf agents, each alone, on the default `lan` profile, encrypted with one
        key. `handlers` are `-event-handler` values given to every agent. `directory`: the
        cluster's temp dir, made by the caller (e.g. to hold a handler script; see
        `temp_dir`), else made here; `stop` removes it either way. `commands[i]` is the command
        that started agent `i`."""
        self.dir = directory or temp_dir()
        self.processes = Processes()
        self.key = subprocess.check_output(["serf", "keygen"], text=True).strip()
        self.handlers = list(handlers)
        self.procs, self.names, self.bind, self.rpc_addrs, self.rpcs, self.stats = [], [], [], [], [], []
        self.commands = []
        for i in range(n):
            name = f"s{i}"
            stats = StatsdCounters()
            with open(os.path.join(self.dir, name + ".json"), "w") as f:
                json.dump({"statsd_addr": f"127.0.0.1:{stats.port}"}, f)
            self.names.append(name)
            self.stats.append(stats)
            self.bind.append(None)
            self.rpc_addrs.append(None)
            self.rpcs.append(None)
            self.commands.append(None)
            self.new_ports(i)
            self.procs.append(self.launch(i))

    def new_ports(self, i):
        """Fresh gossip (UDP and TCP) and RPC ports for agent `i`, and its command with them."""
        port, rpc = free_udp_tcp_port(), free_port()
        self.bind[i] = f"127.0.0.1:{port}"
        self.rpc_addrs[i] = ("127.0.0.1", rpc)
        self.forget_connection(i)
        cmd = ["serf", "agent", "-node", self.names[i], "-bind", self.bind[i], "-rpc-addr",
               f"127.0.0.1:{rpc}", "-encrypt", self.key, "-config-file",
               os.path.join(self.dir, self.names[i] + ".json")]
        for handler in self.handlers:
            cmd += ["-event-handler", handler]
        self.commands[i] = cmd

    def launch(self, i, log_name=None):
        log = os.path.join(self.dir, (log_name or self.names[i]) + ".log")
        return self.processes.start(self.commands[i], log)

    def restart(self, i):
        """A new agent with agent `i`'s name, ports and handlers; its log goes to
        `<name>.restart.log`."""
        self.procs[i] = self.launch(i, log_name=self.names[i] + ".restart")
        self.forget_connection(i)

    def forget_connection(self, i):
        if self.rpcs[i] is not None:
            self.rpcs[i].close()
            self.rpcs[i] = None

    def pid(self, i):
        return self.procs[i].pid

    def rpc(self, i, command, body=None, has_body=True):
        """One RPC call to agent `i`, over its kept connection; None if it cannot answer."""
        for attempt in (0, 1):
            try:
                if self.rpcs[i] is None:
                    self.rpcs[i] = SerfRpc(self.rpc_addrs[i])
                return self.rpcs[i].call(command, body, has_body)
            except (OSError, ConnectionError, ValueError, msgpack.UnpackException):
                if self.rpcs[i] is not None:
                    self.rpcs[i].close()
                self.rpcs[i] = None
        return None

    def up(self, i):
        return self.rpc(i, "members") is not None

    def statuses(self, i):
        answer = self.rpc(i, "members")
        return {m["Name"]: m["Status"] for m in answer["Members"]} if answer else {}

    def join(self, i, seed):
        return self.rpc(i, "join", {"Existing": [self.bind[seed]], "Replay": False}) is not None

    def send_event(self, i, name):
        return self.rpc(i, "event", {"Name": name, "Payload": b"bench", "Coalesce": False},
                        has_body=False) is not None

    def bytes_out(self, i):
        """Bytes this agent has sent (UDP and TCP), from memberlist's own counters."""
        return self.stats[i].total("memberlist.udp.sent") + self.stats[i].total("memberlist.tcp.sent")

    def stop(self):
        for rpc in self.rpcs:
            if rpc is not None:
                rpc.close()
        self.processes.stop_all()
        for stats in self.stats:
            stats.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def temp_dir():
    """A new temp dir for a SerfCluster (what it makes itself without `directory`)."""
    return tempfile.mkdtemp(prefix="serf-bench-")


class UserEventWatch:
    """Serf's `stream` RPC on every agent of a cluster: the monotonic time each agent received
    each user event."""

    def __init__(self, cluster):
        self.arrivals, self.lock, self.threads, self.rpcs = {}, threading.Lock(), [], []
        for i, addr in enumerate(cluster.rpc_addrs):
            rpc = SerfRpc(addr, timeout=None)
            rpc.call("stream", {"Type": "user"}, has_body=False)
            self.rpcs.append(rpc)
            thread = threading.Thread(target=self.listen, args=(i, rpc), daemon=True)
            thread.start()
            self.threads.append(thread)

    def listen(self, i, rpc):
        try:
            while True:
                rpc.next_object()  # the header of the streamed record
                event = rpc.next_object()
                at = time.monotonic()
                with self.lock:
                    self.arrivals.setdefault(event.get("Name"), {}).setdefault(i, at)
        except (OSError, ConnectionError, ValueError):
            return

    def received(self, name):
        with self.lock:
            return dict(self.arrivals.get(name, {}))

    def stop(self):
        for rpc in self.rpcs:
            try:
                rpc.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            rpc.close()
        for thread in self.threads:
            thread.join(timeout=2)
