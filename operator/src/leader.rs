//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several operator replicas only one
//! reconciles. A replica becomes leader by creating the Lease or taking over one whose holder has not
//! renewed it for `leaseDurationSeconds`; every write is a compare-and-swap on `resourceVersion`, so two
//! candidates cannot both win. The leader renews every `renew_interval`; when it cannot renew within
//! `renew_deadline` (shorter than the lease duration) it stops reconciling before anyone else may start.
//!
//! NB: no maintained leader-election crate supports kube 5 at the time of writing, hence this small one.

use std::time::Duration;

use crate::kube_error::Described;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;

/// Timing of the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates retry.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        LeaseTiming {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Why the Lease could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} lease {name}: {}", Described(.source))]
pub struct LeaseError {
    action: &'static str,
    name: String,
    source: kube::Error,
}

/// One replica's handle on the Lease.
#[derive(Debug, Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_conflict() || status.is_already_exists() || status.code == 409)
}

impl LeaseLock {
    /// A lock on Lease `name` (in `api`'s namespace) for the replica called `identity`.
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        LeaseLock {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
        }
    }

    /// The replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    fn error(&self, action: &'static str, source: kube::Error) -> LeaseError {
        LeaseError {
            action,
            name: self.name.clone(),
            source,
        }
    }

    /// The lease as the API server has it now, `None` when it does not exist yet.
    async fn read(&self) -> Result<Option<Lease>, LeaseError> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|source| self.error("read", source))
    }

    /// Whether a compare-and-swap write of the lease (`action`) won: `Ok(false)` when another
    /// writer came first.
    fn won(&self, action: &'static str, written: kube::Result<Lease>) -> Result<bool, LeaseError> {
        match written {
            Ok(_) => Ok(true),
            Err(error) if is_conflict(&error) => Ok(false),
            Err(source) => Err(self.error(action, source)),
        }
    }

    /// Acquires or renews the lease; `Ok(false)` when another replica holds it.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaseError> {
        let now = Timestamp::now();
        let current = self.read().await?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            let created = self.api.create(&PostParams::default(), &lease).await;
            return self.won("create", created);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let held_by_me = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !held_by_me && !lease_expired(&spec, now) {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: if held_by_me {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if held_by_me {
                transitions
            } else {
                transitions + 1
            }),
            ..spec
        });
        // NB: replace carries metadata.resourceVersion, so a concurrent writer makes this fail with 409.
        let replaced = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
        self.won("update", replaced)
    }

    /// Blocks until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => tracing::debug!(lease = %self.name, "another replica leads"),
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the lease until a renewal cannot succeed within the renew deadline; returns then
    /// (leadership is lost and the caller must stop reconciling).
    pub async fn keep_renewing(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another replica took the lease");
                    return;
                }
                Err(error) => {
                    tracing::warn!(%error, "failed to renew the lease");
                    if last_renewal.elapsed() >= self.timing.renew_deadline {
                        tracing::error!(lease = %self.name, "could not renew the lease in time");
                        return;
                    }
                }
            }
        }
    }

    /// Gives the lease up (on graceful shutdown) so another replica takes over at once.
    pub async fn release(&self) -> Result<(), LeaseError> {
        let Some(mut lease) = self.read().await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
            .map_err(|source| LeaseError {
                action: "release",
                name: self.name.clone(),
                source,
            })
    }
}

/// Whether the holder of `spec` has let it lapse at `now` (a lease without holder or renewal is
/// free).
pub fn lease_expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    if spec
        .holder_identity
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return true;
    }
    match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(seconds)) => {
            renewed.0 + SignedDuration::from_secs(i64::from(seconds)) < now
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_secs(seconds)
    }

    fn held(holder: Option<&str>, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(at(renewed))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_only_after_its_duration_without_renewal() {
        assert!(!lease_expired(&held(Some("a"), 100), at(110)));
        assert!(!lease_expired(&held(Some("a"), 100), at(115)));
        assert!(lease_expired(&held(Some("a"), 100), at(116)));
    }

    #[test]
    fn a_released_lease_is_free() {
        assert!(lease_expired(&held(None, 100), at(101)));
        assert!(lease_expired(&held(Some(""), 100), at(101)));
    }
}
