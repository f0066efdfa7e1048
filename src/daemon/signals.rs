//! SIGINT/SIGTERM: the first asks for a graceful leave, a second one exits at once.

use tokio::signal::unix::{signal, SignalKind};

/// Resolves on the first SIGINT or SIGTERM; from then on, another one exits the process.
pub async fn first_signal() {
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop the agent with `rover-agent leave`");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: leaving the cluster (send another to exit at once)");
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        // Not eprintln!: it panics when stderr is gone, and this must exit.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"second signal: exiting without waiting\n",
        );
        std::process::exit(130);
    });
}
