"""Teams (clusters of their own, linked by border agents) on rover-agent alone (Serf has no
teams); each team is a cluster with its own key, its first agent the border, each link a
pairwise key both its ends hold, every link trusted both ways (`trust add <link_id> --what
send-alerts-to,accept-alerts-from` on each border):

  teams_diamond_alert      a diamond of transit links a-b, a-c, b-d, c-d (2 agents per team,
                           d 3): `alert raise` (the CLI) on a2, seconds until every host of d
                           lists it (GET /v1/alerts, round-robin); 5 alerts, one after the other
  teams_updates_per_alert  UpdateAlert frames received per alert on every link end ("d<-b":
                           what d's border got from b), K = 5 alerts raised on a2 in figure 3
                           (a, b, c linked pairwise, direct), the chain a-b-c direct and
                           transit, and the diamond (its 5 alerts above): each border's
                           `updates_in` (GET /v1/teams) after the alerts are on every host they
                           should reach and the counters stand still, less its value before
  teams_link_cut           two teams a, b (2 agents each, direct): kill -9 of b's border,
                           seconds until every host of a lists (a, a1, team-link/b) firing;
                           with link_timeout = 15s (the default) and 3s

Every border's link listener is a port picked like the others; an agent whose gossip or API port
was taken is started again on new ports (a taken link port fails the run).
"""
import os, shutil, statistics, subprocess, tempfile, time

from .common import Processes, free_port, wait_until
from .rover import RoverCluster

TOOL = "rover-agent"
ALERTS = 5
DIAMOND = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
TRIANGLE = [("a", "b"), ("a", "c"), ("b", "c")]
CHAIN = [("a", "b"), ("b", "c")]


class Team(RoverCluster):
    """The agents `<team>1`... of one team (its own key and data dirs), the first started with
    the border's config, the others joining it."""

    def __init__(self, binary, team, size, border_config, parent):
        self.binary, self.team = binary, team
        self.dir = os.path.join(parent, team)
        os.makedirs(self.dir)
        self.processes = Processes()
        self.join_at_start, self.profile = True, None
        self.key = os.path.join(self.dir, "key")
        with open(self.key, "w") as f:
            f.write(subprocess.check_output([binary, "keygen"], text=True))
        self.config_file = None
        self.border_config = os.path.join(self.dir, "border.toml")
        with open(self.border_config, "w") as f:
            f.write(border_config)
        self.procs, self.apis, self.names, self.gossip, self.conns = [], [], [], [], []
        self.seed_moved = False
        for i in range(size):
            self.names.append(f"{team}{i + 1}")
            self.gossip.append(None)
            self.apis.append(None)
            self.conns.append(None)
            self.new_ports(i)
            self.procs.append(self.launch(i))

    def command(self, i, join=None):
        cmd = super().command(i, join) + ["--team", self.team]
        if i == 0:
            cmd += ["--config", self.border_config]
        return cmd

    def data_dir(self, i):
        return os.path.join(self.dir, self.names[i])

    def cli(self, i, *args, positional=(), timeout=30):
        """The CLI against agent `i` (its token read from its data dir); `positional` after
        `--` (a link id may start with '-')."""
        env = {k: v for k, v in os.environ.items() if k != "ROVER_TOKEN_FILE"}
        cmd = [self.binary, *args, "--api", "%s:%d" % self.apis[i], "--data-dir", self.data_dir(i),
               "--", *positional]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)

    def links(self):
        """The border's links as GET /v1/teams shows them ([] if it cannot answer)."""
        return self.request(0, "GET", "/v1/teams") or []

    def alerts(self, i):
        """{(team, host, name): alert} agent `i` lists, or None if it cannot answer."""
        alerts = self.request(i, "GET", "/v1/alerts")
        if alerts is None:
            return None
        return {(a["team"], a["host"], a["name"]): a for a in alerts}

    def stop(self):
        for conn in self.conns:
            if conn is not None:
                conn.close()
        self.processes.stop_all()


class Topology:
    """Teams `sizes` ({team: agents}) linked by `links` ([(team, team)]) in `mode`, started,
    formed and trusted; `stop()` stops every agent and removes the files."""

    def __init__(self, binary, sizes, links, mode, link_timeout="15s"):
        self.dir = tempfile.mkdtemp(prefix="rover-bench-teams-")
        self.links, self.mode, self.teams = links, mode, {}
        try:
            listen = {team: f"127.0.0.1:{free_port()}" for team in sizes}
            ends = {team: [] for team in sizes}
            for a, b in links:
                key = os.path.join(self.dir, f"{a}-{b}.key")
                with open(key, "w") as f:
                    f.write(subprocess.check_output([binary, "keygen"], text=True))
                ends[a].append((b, key))
                ends[b].append((a, key))
            for team, size in sizes.items():
                config = f'[team]\nlink_bind = "{listen[team]}"\nlink_timeout = "{link_timeout}"\n'
                for peer, key in ends[team]:
                    config += (f'[[team.link]]\nteam = "{peer}"\npeer = "{listen[peer]}"\n'
                               f'key_file = "{key}"\nmode = "{mode}"\n')
                self.teams[team] = Team(binary, team, size, config, self.dir)
            for team in self.teams.values():
                if team.wait_up(60) is None:
                    raise SystemExit(f"team {team.team}: agents did not come up\n" + self.tails())
            if wait_until(self.formed, 60, every=0.1) is None:
                raise SystemExit("the teams did not form\n" + self.tails())
            for team in self.teams.values():
                self.trust(team)
            if wait_until(self.links_ready, 60, every=0.1) is None:
                raise SystemExit(f"links not up, synced and trusted: {self.link_states()}\n" + self.tails())
        except BaseException:
            self.stop()
            raise

    def n(self):
        return sum(len(t.procs) for t in self.teams.values())

    def formed(self):
        """Every agent of each team lists all its team's agents alive."""
        for team in self.teams.values():
            size = len(team.procs)
            for i in range(size):
                if sum(1 for s in team.statuses(i).values() if s == "alive") != size:
                    return False
        return True

    @staticmethod
    def trust(team):
        if wait_until(lambda: team.links(), 30, every=0.1) is None:
            raise SystemExit(f"team {team.team}: its border lists no link")
        for link in team.links():
            done = team.cli(0, "trust", "add", "--petname", link["team"],
                            "--what", "send-alerts-to,accept-alerts-from", positional=[link["link_id"]])
            if done.returncode != 0:
                raise SystemExit(f"trust add on {team.names[0]} failed: {done.stderr}")

    def link_states(self):
        return {t.team: [(l["team"], l["state"], l["mode"], l["synced"]) for l in t.links()]
                for t in self.teams.values()}

    def links_ready(self):
        for team in self.teams.values():
            links = team.links()
            if len(links) != sum(1 for a, b in self.links if team.team in (a, b)):
                return False
            for link in links:
                if not (link["state"] == "up" and link["synced"] and link["mode"] == self.mode
                        and link["trusted_send"] and link["trusted_accept"]):
                    return False
        return True

    def updates_in(self):
        """{"x<-y": UpdateAlert frames x's border received from y} (None if a border did not
        answer)."""
        counts = {}
        for team in self.teams.values():
            links = team.request(0, "GET", "/v1/teams")
            if links is None:
                return None
            for link in links:
                counts[f"{team.team}<-{link['team']}"] = link["updates_in"]
        return counts

    def steady_updates(self, quiet=1.5, timeout=20):
        """The counters once they stood still for `quiet` seconds (polled every 0.25 s); None
        if they kept moving for `timeout` seconds."""
        last, since, start = None, time.monotonic(), time.monotonic()
        while time.monotonic() - start < timeout:
            now = self.updates_in()
            if now is not None and now == last:
                if time.monotonic() - since >= quiet:
                    return now
            else:
                last, since = now, time.monotonic()
            time.sleep(0.25)
        return None

    def all_list(self, team, key, state="firing"):
        t = self.teams[team]
        for i in range(len(t.procs)):
            alerts = t.alerts(i)
            if alerts is None or alerts.get(key, {}).get("state") != state:
                return False
        return True

    def any_lists(self, team, keys):
        """Whether an agent of `team` lists one of `keys` (in any state)."""
        t = self.teams[team]
        return any(k in (t.alerts(i) or {}) for i in range(len(t.procs)) for k in keys)

    def raise_alert(self, team, i, name):
        done = self.teams[team].cli(i, "alert", "raise", "--summary", "bench", positional=[name])
        if done.returncode != 0:
            raise SystemExit(f"alert raise {name} on {self.teams[team].names[i]} failed: {done.stderr}")

    def tails(self):
        return "\n".join(f"=== team {t.team} ===\n" + t.tails() for t in self.teams.values())

    def stop(self):
        for team in self.teams.values():
            team.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def first_seen_everywhere(team, key, timeout=30):
    """Polls every agent of `team` round-robin for `key` firing: {agent: seconds until it was
    first seen}, or None after `timeout` seconds. Agents that have it are not asked again."""
    start, seen = time.monotonic(), {}
    while time.monotonic() - start < timeout:
        for i, name in enumerate(team.names):
            if name in seen:
                continue
            alerts = team.alerts(i)
            if alerts is not None and alerts.get(key, {}).get("state") == "firing":
                seen[name] = time.monotonic() - start
        if len(seen) == len(team.names):
            return seen
        time.sleep(0.005)
    return None


def updates_per_alert(out, topo, topology, before, names, reach):
    """Waits until `names` (raised on a2) are firing on every host of the teams `reach` and the
    counters stand still, then prints a line per link end: UpdateAlert frames received per
    alert."""
    keys = [("a", "a2", name) for name in names]
    if wait_until(lambda: all(topo.all_list(t, k) for t in reach for k in keys), 60, every=0.1) is None:
        raise SystemExit(f"{topology}: the alerts did not reach {reach}\n" + topo.tails())
    after = topo.steady_updates()
    if after is None:
        raise SystemExit(f"{topology}: the UpdateAlert counters never stood still")
    elsewhere = sorted(t for t in topo.teams if t not in reach and topo.any_lists(t, keys))
    for link in sorted(after):
        frames = after[link] - before.get(link, 0)
        out.line(scenario="teams_updates_per_alert", n=topo.n(), tool=TOOL,
                 value=round(frames / len(names), 4), unit="frames/alert", link=link,
                 topology=topology, mode=topo.mode, alerts=len(names), updates_in=frames,
                 updates_in_total=after[link], reached=sorted(reach), also_reached=elsewhere)


def diamond(out, binary, alerts=ALERTS):
    """The diamond's alert times (teams_diamond_alert) and its UpdateAlert frames per alert."""
    topo = Topology(binary, {"a": 2, "b": 2, "c": 2, "d": 3}, DIAMOND, "transit")
    try:
        before = topo.steady_updates()
        if before is None:
            raise SystemExit("diamond: the UpdateAlert counters never stood still")
        values, names = [], []
        for run in range(alerts):
            name = f"bench-{run}"
            names.append(name)
            t0 = time.monotonic()
            topo.raise_alert("a", 1, name)
            raised = time.monotonic() - t0
            seen = first_seen_everywhere(topo.teams["d"], ("a", "a2", name))
            if seen is None:
                raise SystemExit(f"diamond: {name} did not reach every host of d\n" + topo.tails())
            took = raised + max(seen.values())
            path = topo.teams["d"].alerts(2).get(("a", "a2", name), {}).get("path")
            values.append(took)
            out.sample("teams_diamond_alert", topo.n(), TOOL, took, "s", run=run, raised_from="a2",
                       cli_s=round(raised, 4), per_host={h: round(raised + s, 4) for h, s in seen.items()},
                       path=">".join(path or []))
        out.summary("teams_diamond_alert", topo.n(), TOOL, values, "s", topology="diamond", mode="transit")
        updates_per_alert(out, topo, "diamond", before, names, ["a", "b", "c", "d"])
    finally:
        topo.stop()


def updates(out, binary, topology, links, mode, reach, alerts=ALERTS):
    """K alerts raised on a2 in a topology of 2-agent teams; frames per alert per link end."""
    teams = sorted({t for link in links for t in link})
    topo = Topology(binary, {t: 2 for t in teams}, links, mode)
    try:
        before = topo.steady_updates()
        if before is None:
            raise SystemExit(f"{topology}: the UpdateAlert counters never stood still")
        names = [f"bench-{k}" for k in range(alerts)]
        for name in names:
            topo.raise_alert("a", 1, name)
        updates_per_alert(out, topo, topology, before, names, reach)
    finally:
        topo.stop()


def link_cut(out, binary, link_timeout_s, runs):
    """kill -9 of b's border; seconds until every host of a lists (a, a1, team-link/b) firing."""
    key = ("a", "a1", "team-link/b")
    values = []
    for run in range(runs):
        topo = Topology(binary, {"a": 2, "b": 2}, [("a", "b")], "direct", f"{link_timeout_s}s")
        try:
            # A link not up within link_timeout of the start raised it: it resolves once synced.
            def quiet():
                return all((topo.teams["a"].alerts(i) or {}).get(key, {}).get("state") in (None, "resolved")
                           for i in range(2))
            if wait_until(quiet, 60, every=0.1) is None:
                raise SystemExit("link cut: team-link/b still firing before the cut\n" + topo.tails())
            t0 = time.monotonic()
            topo.teams["b"].kill(0)
            killed = time.monotonic() - t0
            seen = first_seen_everywhere(topo.teams["a"], key, timeout=link_timeout_s * 2 + 30)
            if seen is None:
                raise SystemExit(f"link cut: no {key} on every host of a\n" + topo.tails())
            took = killed + max(seen.values())
            values.append(took)
            out.sample("teams_link_cut", topo.n(), TOOL, took, "s", run=run,
                       link_timeout=f"{link_timeout_s}s", kill_s=round(killed, 4),
                       per_host={h: round(killed + s, 4) for h, s in seen.items()})
        finally:
            topo.stop()
    out.summary("teams_link_cut", 4, TOOL, values, "s", link_timeout=f"{link_timeout_s}s")


def teams(out, binary, quick=False):
    """The three measurements, one topology after the other."""
    diamond(out, binary)
    updates(out, binary, "figure3", TRIANGLE, "direct", ["a", "b", "c"])
    updates(out, binary, "chain", CHAIN, "direct", ["a", "b"])
    updates(out, binary, "chain", CHAIN, "transit", ["a", "b", "c"])
    for timeout in (15, 3):
        link_cut(out, binary, timeout, 1 if quick else 3)
