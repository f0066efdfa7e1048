//! Reload: SIGHUP or `rover-agent reload` (`POST /v1/reload`) re-read the config file and
//! apply what can change while the agent runs; the environment and the flags given at start
//! stay as they were (only the file is read again, and they still override it).
//!
//! Applied live: the checks (removed ones stop and their alerts clear, new ones start,
//! changed ones restart from their debounced state), the notification channels (new sends go
//! on the new ones; sends in flight finish on the old), `notify.group_wait`,
//! `notify.repeat_interval` and `log.level`. Every other setting whose effective value changed
//! is reported as needing a restart (answer, and the log at WARN), never silently ignored. A
//! file that does not read or validate leaves the running config untouched and says why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::housekeeping::CheckRoster;
use super::supervisor::Supervisor;
use super::tasks;
use crate::api::ReloadReport;
use crate::checks::outcome::CheckState;
use crate::checks::runner::CheckEvent;
use crate::config::settings::{self, Setting};
use crate::config::{self, Config, Layer};
use crate::incidents::Live;
use crate::notify::Notifiers;

/// Settings a reload applies without a restart; every other row needs one. (The `[[check]]`
/// and `[[notify.*]]` tables are applied too.) A setting made live by later work (for
/// example `node.tags`) is added here and applied in [`Reloader::apply_node_settings`].
pub const LIVE_SETTINGS: &[&str] = &[
    "notify.group_wait",
    "notify.repeat_interval",
    "notify.console",
    "log.level",
    "node.tags",
];

/// Where the config came from at start, to read it again.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The `--config` file, if any (without one there is nothing to reload).
    pub file: Option<PathBuf>,
    /// The environment as it was at start.
    pub env: Layer,
    /// The flags as they were at start.
    pub flags: Layer,
    /// The data dir used when none is configured.
    pub default_data_dir: PathBuf,
    /// This host's name at start.
    pub hostname: String,
}

impl ConfigSource {
    /// Reads the file and resolves it with the start's environment and flags.
    pub fn load(&self) -> Result<(Config, Option<Layer>), config::ConfigError> {
        let file = match &self.file {
            Some(path) => Some((Layer::from_file(path)?, path.clone())),
            None => None,
        };
        let layer = file.as_ref().map(|(layer, _)| layer.clone());
        let config = config::resolve(
            file,
            self.env.clone(),
            self.flags.clone(),
            self.default_data_dir.clone(),
            self.hostname.clone(),
        )?;
        Ok((config, layer))
    }
}

/// The handles a reload changes things through.
pub struct Targets {
    /// The incident engine's notifiers and rules.
    pub live: watch::Sender<Live<Notifiers>>,
    /// The API's notifiers (`notify test`, `/metrics`).
    pub notifiers: watch::Sender<Arc<Notifiers>>,
    /// The checks the check-results loop accepts.
    pub roster: watch::Sender<CheckRoster>,
    /// Where new check tasks report.
    pub check_events: mpsc::Sender<CheckEvent>,
    /// Each check's debounced state.
    pub debounced: watch::Receiver<BTreeMap<String, CheckState>>,
    /// The membership task, for this node's tags.
    pub membership: rover_membership::MembershipHandle,
}

/// Applies reloads; owned by the daemon's main loop. See the module docs.
pub struct Reloader {
    source: Option<ConfigSource>,
    /// The config file as the agent started with it: what needs a restart runs as it says.
    started_file: Option<Layer>,
    running: Config,
    targets: Targets,
}

impl Reloader {
    /// A reloader for an agent running `running`, read from `source` (`None`: started
    /// in-process without a file to read again).
    pub fn new(source: Option<ConfigSource>, running: Config, targets: Targets) -> Self {
        let file = source
            .as_ref()
            .and_then(|s| s.file.as_ref())
            .and_then(|path| Layer::from_file(path).ok());
        Self {
            source,
            started_file: file,
            running,
            targets,
        }
    }

    /// Re-reads the file and applies it, logging the outcome: what was applied at INFO, what
    /// needs a restart at WARN, a refused file at ERROR.
    pub fn reload(&mut self, supervisor: &mut Supervisor) -> Result<ReloadReport, String> {
        let result = self.try_reload(supervisor);
        match &result {
            Ok(report) => {
                tracing::info!(applied = ?report.applied, "config reloaded");
                if !report.needs_restart.is_empty() {
                    tracing::warn!(keys = ?report.needs_restart, "changed in the config file, but only a restart applies them");
                }
            }
            Err(why) => {
                tracing::error!(error = %why, "config file refused; the running config is unchanged")
            }
        }
        result
    }

    fn try_reload(&mut self, supervisor: &mut Supervisor) -> Result<ReloadReport, String> {
        let Some(source) = &self.source else {
            return Err("the agent was started without --config: no file to read again".into());
        };
        if source.file.is_none() {
            return Err("the agent was started without --config: no file to read again".into());
        }
        let (new, file) = source.load().map_err(|e| e.to_string())?;
        let channels_changed = new.notify.channels != self.running.notify.channels;
        let notifiers = if channels_changed {
            let built = Notifiers::from_config(&new.notify)
                .map_err(|e| format!("setting up the notifiers: {e:#}"))?;
            Some(Arc::new(
                built.keeping_stats_of(&self.targets.notifiers.borrow()),
            ))
        } else {
            None
        };
        let mut report = ReloadReport {
            needs_restart: needs_restart(source, self.started_file.as_ref(), file.as_ref()),
            ..ReloadReport::default()
        };
        self.apply_checks(supervisor, &new, &mut report);
        self.apply_notify(&new, notifiers, &mut report);
        if new.log_filter != self.running.log_filter {
            match super::log_sink::set_filter(&new.log_filter) {
                Ok(()) | Err(super::log_sink::SetFilterError::NotInstalled) => report
                    .applied
                    .push(format!("log.level = {:?}", new.log_filter)),
                Err(e) => return Err(format!("log.level: {e}")),
            }
        }
        self.apply_node_settings(&new, &mut report);
        // What needs a restart keeps running as it started: it is compared with the file the
        // agent started with, so it is reported on every reload until a restart, and no more
        // once the file says again what runs.
        self.running = Config {
            checks: new.checks,
            notify: new.notify,
            log_filter: new.log_filter,
            tags: new.tags,
            ..self.running.clone()
        };
        Ok(report)
    }

    /// Stops removed and changed checks, publishes the new roster, starts new and changed.
    fn apply_checks(&self, supervisor: &mut Supervisor, new: &Config, report: &mut ReloadReport) {
        let old = &self.running.checks;
        let find = |list: &[crate::checks::CheckConfig], name: &str| {
            list.iter().find(|c| c.name == name).cloned()
        };
        let mut start = Vec::new();
        for check in old {
            match find(&new.checks, &check.name) {
                None => {
                    supervisor.stop(&tasks::check_task(&check.name));
                    report
                        .applied
                        .push(format!("check {:?} removed", check.name));
                }
                Some(now) if now != *check => {
                    supervisor.stop(&tasks::check_task(&check.name));
                    report
                        .applied
                        .push(format!("check {:?} changed (restarted)", check.name));
                    start.push(now);
                }
                Some(_) => {}
            }
        }
        for check in &new.checks {
            if find(old, &check.name).is_none() {
                report.applied.push(format!("check {:?} added", check.name));
                start.push(check.clone());
            }
        }
        let _ = self.targets.roster.send(roster(&new.checks));
        for check in start {
            tasks::spawn_check(
                supervisor,
                check,
                self.targets.check_events.clone(),
                self.targets.debounced.clone(),
            );
        }
    }

    /// Publishes new notifiers and rules to the engine and the API.
    fn apply_notify(
        &self,
        new: &Config,
        notifiers: Option<Arc<Notifiers>>,
        report: &mut ReloadReport,
    ) {
        let (old, now) = (&self.running.notify, &new.notify);
        if old.group_wait != now.group_wait {
            report.applied.push(format!(
                "notify.group_wait = {}",
                settings::short_duration(now.group_wait)
            ));
        }
        if old.repeat_interval != now.repeat_interval {
            report.applied.push(format!(
                "notify.repeat_interval = {}",
                settings::short_duration(now.repeat_interval.unwrap_or_default())
            ));
        }
        if let Some(notifiers) = &notifiers {
            report
                .applied
                .push(format!("notify channels: {}", notifiers.names().join(", ")));
            let _ = self.targets.notifiers.send(Arc::clone(notifiers));
        }
        let rules = super::due_rules(new);
        self.targets.live.send_if_modified(|live| {
            let mut changed = live.rules != rules;
            live.rules = rules;
            if let Some(notifiers) = notifiers {
                live.notifiers = notifiers;
                changed = true;
            }
            changed
        });
    }

    /// This node's tags: gossiped again with the member (a new generation; see
    /// `MembershipHandle::set_tags`). They were checked when the file was read.
    fn apply_node_settings(&self, new: &Config, report: &mut ReloadReport) {
        if new.tags == self.running.tags {
            return;
        }
        let text: Vec<String> = new.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        report
            .applied
            .push(format!("node.tags = {{{}}}", text.join(", ")));
        let (membership, tags) = (self.targets.membership.clone(), new.tags.clone());
        tokio::spawn(async move {
            match membership.set_tags(tags).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "node.tags refused by membership"),
                Err(e) => tracing::error!(error = %e, "cannot change node.tags"),
            }
        });
    }
}

/// The check-results loop's roster of `checks`.
pub fn roster(checks: &[crate::checks::CheckConfig]) -> CheckRoster {
    checks
        .iter()
        .map(|c| (c.name.clone(), c.severity.map(super::severity_of)))
        .collect()
}

/// The keys not in [`LIVE_SETTINGS`] whose effective value (flags, else environment, else
/// the file) differs between the file read before and the one read now.
fn needs_restart(
    source: &ConfigSource,
    before: Option<&Layer>,
    now: Option<&Layer>,
) -> Vec<String> {
    let effective = |file: Option<&Layer>, setting: &Setting| {
        source
            .flags
            .get(setting)
            .or_else(|| source.env.get(setting))
            .or_else(|| file.and_then(|f| f.get(setting)))
            .cloned()
    };
    let mut keys: Vec<String> = settings::SETTINGS
        .iter()
        .filter(|s| !LIVE_SETTINGS.contains(&s.key))
        .filter(|s| effective(before, s) != effective(now, s))
        .map(|s| s.key.to_owned())
        .collect();
    // The border links start with the agent.
    if before.and_then(|f| f.team.as_ref()) != now.and_then(|f| f.team.as_ref()) {
        keys.push("[team]".to_owned());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn layer(text: &str) -> Layer {
        Layer::from_toml(text, Path::new("rover.toml")).unwrap()
    }

    fn source(env: Layer) -> ConfigSource {
        ConfigSource {
            file: Some(PathBuf::from("rover.toml")),
            env,
            flags: Layer::default(),
            default_data_dir: PathBuf::from("/tmp/x"),
            hostname: "h".into(),
        }
    }

    #[test]
    fn a_changed_bind_needs_a_restart_and_a_changed_group_wait_does_not() {
        let before = layer("[gossip]\nbind = \"127.0.0.1:1\"\n[notify]\ngroup_wait = \"5s\"\n");
        let now = layer("[gossip]\nbind = \"127.0.0.1:2\"\n[notify]\ngroup_wait = \"1s\"\n");
        assert_eq!(
            needs_restart(&source(Layer::default()), Some(&before), Some(&now)),
            ["gossip.bind"]
        );
    }

    #[test]
    fn a_file_change_hidden_by_the_environment_changes_nothing() {
        let env = Layer::from_env(|k| (k == "ROVER_TEAM").then(|| "ops".into()));
        let before = layer("[node]\nteam = \"a\"\n");
        let now = layer("[node]\nteam = \"b\"\n");
        assert!(needs_restart(&source(env), Some(&before), Some(&now)).is_empty());
    }
}
