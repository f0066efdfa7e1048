"""Benchmark library of rover-agent: clusters of rover-agent and of HashiCorp Serf on loopback,
driven the same way, and the scenarios that measure them (JSON lines on stdout).

Modules:
  common        ports, process bookkeeping by PID, bounded waits, JSON-line output
  rover         a cluster of rover-agent processes, read through their HTTP API
  serf          a cluster of serf agents, read through Serf's msgpack RPC
  smtp          a real SMTP server (aiosmtpd) recording what arrives
  side_by_side  join convergence, failure detection, dissemination, idle cost: both tools
  rover_only    leader failover, minority fallback, kill-to-email: rover-agent alone
  notify_compare  notification scenarios counted for rover-agent and Serf handlers
  teams         teams linked by border agents: alert times, UpdateAlert frames per alert per
                link, link cut to the ROVER alert team-link/<team>
"""
