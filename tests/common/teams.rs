//! Teams linked by border agents for the tests: each team a cluster of its own (its own
//! key), its first agent the border, each link a pairwise key only its two teams hold.

#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::{free_tcp_port, wait_for, write_new_key, Cluster};

/// One team: a cluster whose first agent is the border.
pub struct Team {
    pub name: String,
    pub cluster: Cluster,
}

/// A link between two teams' borders: the key file and each end's listener.
pub struct Plan {
    /// team -> its border's link listener.
    pub listen: BTreeMap<String, SocketAddr>,
    /// (team, peer team, mode) for every link end, with the key file.
    pub ends: Vec<(String, String, &'static str, std::path::PathBuf)>,
}

impl Plan {
    pub fn new(
        teams: &[&str],
        links: &[(&str, &str, &'static str)],
        dir: &std::path::Path,
    ) -> Self {
        let listen = teams
            .iter()
            .map(|t| (t.to_string(), free_tcp_port()))
            .collect();
        let mut ends = Vec::new();
        for (a, b, mode) in links {
            let key = dir.join(format!("{a}-{b}.key"));
            write_new_key(&key);
            ends.push((a.to_string(), b.to_string(), *mode, key.clone()));
            ends.push((b.to_string(), a.to_string(), *mode, key));
        }
        Self { listen, ends }
    }

    /// The `[team]` section of `team`'s border.
    pub fn config(&self, team: &str) -> String {
        let mut out = format!(
            "[team]\nlink_bind = \"{}\"\nlink_timeout = \"3s\"\n",
            self.listen[team]
        );
        for (_, to, mode, key) in self.ends.iter().filter(|e| e.0 == team) {
            out.push_str(&format!(
                "[[team.link]]\nteam = \"{to}\"\npeer = \"{}\"\nkey_file = \"{}\"\nmode = \"{mode}\"\n",
                self.listen[to.as_str()],
                key.display()
            ));
        }
        out
    }
}

/// Starts `size` agents of team `name` (`<name>1`...), the first one a border per `plan`.
pub fn team(name: &str, size: usize, plan: &Plan) -> Team {
    team_with(name, size, plan, "", false)
}

/// [`team`] with `extra` (e.g. a `[notify]` section) in every agent's config, and
/// `team.notify_remote` on every agent when `notify_remote`.
pub fn team_with(name: &str, size: usize, plan: &Plan, extra: &str, notify_remote: bool) -> Team {
    let mut cluster = Cluster::new();
    let remote = if notify_remote {
        "notify_remote = true\n"
    } else {
        ""
    };
    let border = format!(
        "{extra}\n{}",
        plan.config(name)
            .replacen("[team]\n", &format!("[team]\n{remote}"), 1)
    );
    let member = format!("{extra}\n[team]\n{remote}");
    cluster.config_for = Some(Box::new(move |index| {
        if index == 0 {
            border.clone()
        } else {
            member.clone()
        }
    }));
    for i in 1..=size {
        cluster.add_agent_called(&format!("{name}{i}"), &["--team".into(), name.into()]);
    }
    assert!(
        wait_for(Duration::from_secs(30), || cluster
            .all_list_alive(&(0..size).collect::<Vec<_>>(), size))
        .is_some(),
        "team {name} did not form"
    );
    Team {
        name: name.to_owned(),
        cluster,
    }
}

impl Team {
    pub fn border(&self) -> &super::Agent {
        &self.cluster.agents[0]
    }

    /// The border's links, as `teams --format json` shows them.
    pub fn links(&self) -> Vec<Value> {
        self.border()
            .get_json("/v1/teams")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    pub fn link(&self, to: &str) -> Option<Value> {
        self.links().into_iter().find(|l| l["team"] == to)
    }

    /// Recommends every link of the border for sending and accepting.
    pub fn trust_links(&self) {
        for link in self.links() {
            let out = self.border().cli(&[
                "trust",
                "add",
                link["link_id"].as_str().unwrap(),
                "--petname",
                link["team"].as_str().unwrap(),
                "--what",
                "send-alerts-to,accept-alerts-from",
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// (origin team, host, name) -> (state, path) of every alert agent `index` lists.
    pub fn alerts_on(&self, index: usize) -> BTreeMap<(String, String, String), (String, String)> {
        self.cluster.agents[index]
            .alerts()
            .into_iter()
            .map(|a| {
                let path: Vec<String> = a["path"]
                    .as_array()
                    .map(|p| {
                        p.iter()
                            .map(|h| h.as_str().unwrap_or("").to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    (
                        a["team"].as_str().unwrap_or("").to_owned(),
                        a["host"].as_str().unwrap_or("").to_owned(),
                        a["name"].as_str().unwrap_or("").to_owned(),
                    ),
                    (a["state"].as_str().unwrap_or("").to_owned(), path.join(">")),
                )
            })
            .collect()
    }

    pub fn raise(&self, index: usize, name: &str) {
        let out = self.cluster.agents[index].cli(&["alert", "raise", name, "--summary", "test"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn clear(&self, index: usize, name: &str) {
        let out = self.cluster.agents[index].cli(&["alert", "clear", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Whether every agent of the team lists `(team, host, name)` in `state`.
    pub fn all_show(&self, key: (&str, &str, &str), state: &str) -> bool {
        let key = (key.0.to_owned(), key.1.to_owned(), key.2.to_owned());
        (0..self.cluster.agents.len())
            .all(|i| self.alerts_on(i).get(&key).is_some_and(|(s, _)| s == state))
    }

    pub fn any_shows_team(&self, origin: &str) -> bool {
        (0..self.cluster.agents.len()).any(|i| self.alerts_on(i).keys().any(|k| k.0 == origin))
    }
}

/// A `[notify]` section mailing `smtp` after `group_wait`.
pub fn mail_config(smtp: &super::smtp::SmtpSink, group_wait: &str) -> String {
    format!(
        "[notify]\ngroup_wait = \"{group_wait}\"\n\n[[notify.email]]\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {}\ntls = \"none\"\nfrom = \"rover@example.org\"\nto = [\"ops@example.org\"]\n",
        smtp.port()
    )
}

/// Figure 5's diamond of transit links: a-b, a-c, b-d, c-d.
pub fn diamond(dir: &std::path::Path) -> Plan {
    Plan::new(
        &["a", "b", "c", "d"],
        &[
            ("a", "b", "transit"),
            ("a", "c", "transit"),
            ("b", "d", "transit"),
            ("c", "d", "transit"),
        ],
        dir,
    )
}
