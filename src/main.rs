//! The `rover-agent` binary: parses the command line and runs it.

fn main() -> std::process::ExitCode {
    rover_agent::install_tls_provider();
    rover_agent::cli::main()
}
