//! SIGINT/SIGTERM: the first asks for a graceful leave, a second one exits at once. SIGHUP
//! asks for a config reload ([`hangups`]).

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

/// One item per SIGHUP received; never an item when the handler cannot be installed (then
/// `rover-agent reload` still works).
pub fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    // A reload already waiting covers this one too.
                    if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = tx.try_send(())
                    {
                        return;
                    }
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the SIGHUP handler; reload with `rover-agent reload`");
            drop(tx);
        }
    }
    rx
}
