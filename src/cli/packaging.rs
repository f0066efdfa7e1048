//! What a package ships beside the binary, printed by the binary itself so it always matches
//! the command line: shell completions (`completions bash|zsh|fish|elvish|powershell`, with
//! clap_complete) and the man page (`man`, roff from clap_mangen). `scripts/package.sh`
//! writes both into the Debian package.

use std::io::Write;

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// Writes the completion script for `shell` to `out`. The script is made in memory first:
/// clap_complete panics when its writer fails (a closed pipe), we return the error.
pub fn write_completions(shell: Shell, out: &mut dyn Write) -> Result<()> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "rover-agent", &mut script);
    out.write_all(&script).context("writing the completions")
}

/// Writes the man page (section 1, roff) to `out`.
pub fn write_man_page(out: &mut dyn Write) -> Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .context("making the man page")?;
    out.write_all(&page).context("writing the man page")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bash_completions_name_every_subcommand() {
        let mut out = Vec::new();
        write_completions(Shell::Bash, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for sub in [
            "agent",
            "join",
            "members",
            "keys",
            "topology",
            "completions",
        ] {
            assert!(text.contains(sub), "{sub} missing from the completions");
        }
    }

    #[test]
    fn the_man_page_is_roff_with_the_name_and_the_commands() {
        let mut out = Vec::new();
        write_man_page(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH rover-agent"),
            "{text}"
        );
        assert!(text.contains("members"));
    }
}
