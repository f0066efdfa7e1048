//! The `agent` flags of the settings table: one clap argument per row that has a flag, with
//! the row's doc, env and default in its help, read back into the flags [`Layer`].
//!
//! `--api` and `--data-dir` are global flags of [`super::Cli`] (the client commands use them
//! too); they are read from the same matches.

use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches};

use crate::config::settings::{Kind, Setting, SETTINGS};
use crate::config::{Layer, Raw};

/// Flags that [`super::Cli`] declares globally, with clap's ids of them.
pub const GLOBAL_FLAGS: &[(&str, &str)] = &[("--api", "api"), ("--data-dir", "data_dir")];

/// The flags layer of `agent`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingFlags(pub Layer);

/// clap's id of a setting's flag: its key, or the global flag's id.
fn id_of(setting: &'static Setting, flag: &str) -> &'static str {
    GLOBAL_FLAGS
        .iter()
        .find(|(global, _)| *global == flag)
        .map_or(setting.key, |(_, id)| id)
}

fn is_global(flag: &str) -> bool {
    GLOBAL_FLAGS.iter().any(|(global, _)| *global == flag)
}

fn flagged() -> impl Iterator<Item = (&'static Setting, &'static str)> {
    SETTINGS
        .iter()
        .filter_map(|setting| setting.flag.map(|flag| (setting, flag)))
}

fn argument(setting: &'static Setting, flag: &'static str) -> Arg {
    let mut help = format!(
        "{} ({}) [default: {}]",
        setting.doc,
        setting.key,
        setting.default.describe().replace('`', "")
    );
    if let Some(env) = setting.env {
        help.push_str(&format!(" [env: {env}]"));
    }
    let value_name = match setting.kind {
        Kind::Name => "NAME",
        Kind::Path => "FILE",
        Kind::Address { .. } => "IP:PORT",
        Kind::Seeds => "HOST:PORT",
        Kind::Choice(_) => "WORD",
        Kind::Duration(_) => "DURATION",
        Kind::Count { .. } => "N",
        Kind::AbsolutePaths => "PATH",
        Kind::Switch => "BOOL",
        Kind::Invitation => "TOKEN",
        Kind::LogFilter => "FILTER",
        Kind::Interfaces => "INTERFACE",
        Kind::Tags => "KEY=VALUE",
    };
    let arg = Arg::new(id_of(setting, flag))
        .long(flag.trim_start_matches('-'))
        .value_name(value_name)
        .help(help);
    match setting.kind {
        Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces | Kind::Tags => {
            arg.action(ArgAction::Append)
        }
        Kind::Choice(words) => arg
            .action(ArgAction::Set)
            .value_parser(PossibleValuesParser::new(words.iter().copied())),
        _ => arg.action(ArgAction::Set),
    }
}

impl Args for SettingFlags {
    fn augment_args(mut command: clap::Command) -> clap::Command {
        for (setting, flag) in flagged().filter(|(_, flag)| !is_global(flag)) {
            command = command.arg(argument(setting, flag));
        }
        command
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut layer = Layer::default();
        for (setting, flag) in flagged() {
            // Raw values work whatever type the global flags were declared with.
            let Ok(Some(values)) = matches.try_get_raw(id_of(setting, flag)) else {
                continue;
            };
            let values: Vec<String> = values.map(|v| v.to_string_lossy().into_owned()).collect();
            let raw = match setting.kind {
                Kind::Seeds | Kind::AbsolutePaths | Kind::Interfaces | Kind::Tags => {
                    Raw::Many(values)
                }
                _ => match values.into_iter().last() {
                    Some(value) => Raw::One(value),
                    None => continue,
                },
            };
            layer.set(setting, raw);
        }
        Ok(Self(layer))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::config::settings::{
        API_BIND, GOSSIP_JOIN, GOSSIP_PROFILE, NODE_DATA_DIR, NODE_NAME,
    };

    fn flags(args: &[&str]) -> Layer {
        let cli = Cli::try_parse_from(args).unwrap();
        match cli.command {
            Command::Agent(agent) => agent.settings.0,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_flag_of_the_table_is_an_agent_flag() {
        let command = Cli::command();
        let agent = command.find_subcommand("agent").unwrap();
        for (_, flag) in flagged() {
            let long = flag.trim_start_matches('-');
            let found = agent.get_arguments().any(|a| a.get_long() == Some(long))
                || command
                    .get_arguments()
                    .any(|a| a.get_long() == Some(long) && a.is_global_set());
            assert!(found, "{flag} is not a flag of agent");
        }
    }

    #[test]
    fn flags_land_in_the_flags_layer_global_ones_included() {
        let layer = flags(&[
            "rover-agent",
            "--api",
            "127.0.0.1:1",
            "agent",
            "--node",
            "n7",
            "--join",
            "a:1",
            "--join",
            "b:2",
            "--data-dir",
            "/tmp/x",
            "--profile",
            "wan",
        ]);
        assert_eq!(layer.get(&NODE_NAME), Some(&Raw::One("n7".into())));
        assert_eq!(layer.get(&API_BIND), Some(&Raw::One("127.0.0.1:1".into())));
        assert_eq!(layer.get(&NODE_DATA_DIR), Some(&Raw::One("/tmp/x".into())));
        assert_eq!(layer.get(&GOSSIP_PROFILE), Some(&Raw::One("wan".into())));
        assert_eq!(
            layer.get(&GOSSIP_JOIN),
            Some(&Raw::Many(vec!["a:1".into(), "b:2".into()]))
        );
        assert_eq!(flags(&["rover-agent", "agent"]), Layer::default());
    }

    #[test]
    fn a_profile_flag_outside_the_rows_choices_is_bad_usage() {
        let err = Cli::try_parse_from(["rover-agent", "agent", "--profile", "fast"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
