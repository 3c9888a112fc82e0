//! Capped exponential backoff for transient failures (ClickHouse or broker unavailable): retry until
//! success or shutdown, never drop.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::metrics::{Metrics, label};

/// First delay after a failure.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Largest delay between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The attempt was abandoned because the process is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shutting down before {0} succeeded")]
pub struct Abandoned(pub &'static str);

/// The delay before attempt `attempt + 1` (attempt counts from 0).
pub fn backoff(attempt: u32) -> Duration {
    let factor = 1_u32 << attempt.min(16);
    INITIAL_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Runs `operation` until it succeeds, sleeping with [`backoff`] between failures and logging each
/// one. Gives up only when `shutdown` turns true.
pub async fn retry_until_shutdown<T, E, F, Fut>(
    what: &'static str,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
    mut operation: F,
) -> Result<T, Abandoned>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match operation().await {
            Ok(value) => {
                if attempt > 0 {
                    tracing::info!(what, attempts = attempt + 1, "recovered");
                }
                return Ok(value);
            }
            Err(error) => {
                let delay = backoff(attempt);
                metrics
                    .retries
                    .get_or_create(&label("operation", what))
                    .inc();
                tracing::warn!(what, attempt = attempt + 1, retry_in_ms = delay.as_millis() as u64,
                    %error, "transient failure, retrying");
                attempt += 1;
                if *shutdown.borrow() {
                    return Err(Abandoned(what));
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return Err(Abandoned(what)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn retries_until_success_and_stops_on_shutdown() {
        let metrics = Metrics::new();
        let (tx, mut rx) = watch::channel(false);
        let mut calls = 0;
        let value = retry_until_shutdown("test", &metrics, &mut rx, || {
            calls += 1;
            let result = if calls < 3 { Err("down") } else { Ok(calls) };
            async move { result }
        })
        .await;
        assert_eq!(value, Ok(3));
        tx.send(true).unwrap();
        let never: Result<(), Abandoned> =
            retry_until_shutdown("test", &metrics, &mut rx, || async { Err::<(), _>("down") })
                .await;
        assert_eq!(never, Err(Abandoned("test")));
    }
}
