//! Ctrl-C (SIGINT) for statements, counted by one listener for the life of
//! the process.
//!
//! A listener made when a statement starts (`tokio::signal::ctrl_c()` in a
//! `select!`) is registered only at its first poll, after the statement's
//! own first poll, which plans synchronously: a Ctrl-C pressed in those
//! first milliseconds was lost (an outsider saw it ignored 11 times in 18
//! at 1 to 20 ms after Enter), and the query ran to its end. Here a
//! statement takes a [`mark`] before it starts and is cancelled by any
//! Ctrl-C counted after it, whenever the listener gets to count it.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNT: AtomicU64 = AtomicU64::new(0);
static SEEN: tokio::sync::Notify = tokio::sync::Notify::const_new();
static LISTEN: Once = Once::new();

/// Starts the listener (once; inside the runtime).
pub fn listen() {
    LISTEN.call_once(|| {
        tokio::spawn(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut interrupts) = signal(SignalKind::interrupt()) else {
                    return;
                };
                while interrupts.recv().await.is_some() {
                    COUNT.fetch_add(1, Ordering::SeqCst);
                    SEEN.notify_waiters();
                }
            }
            #[cfg(not(unix))]
            while tokio::signal::ctrl_c().await.is_ok() {
                COUNT.fetch_add(1, Ordering::SeqCst);
                SEEN.notify_waiters();
            }
        });
    });
}

/// The Ctrl-Cs counted so far: take it before a statement starts.
pub fn mark() -> u64 {
    listen();
    COUNT.load(Ordering::SeqCst)
}

/// Completes at the first Ctrl-C counted after `mark`.
pub async fn after(mark: u64) {
    loop {
        let seen = SEEN.notified();
        futures::pin_mut!(seen);
        seen.as_mut().enable();
        if COUNT.load(Ordering::SeqCst) > mark {
            return;
        }
        seen.await;
    }
}
