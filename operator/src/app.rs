//! What the subcommands do, for the thin `main`: `run` wires the client, the startup check, the HTTP
//! endpoints, leader election, the controller and graceful shutdown.

use cdcstar_runtime::probes;
use cdcstar_runtime::shutdown::{ShutdownSignals, raised};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cdcstar_crds::CdcPipeline;
use kube::api::ListParams;
use kube::runtime::events::Reporter;
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::cli::RunArgs;
use crate::controller::{self, Context};
use crate::external::clickhouse::ClickHouseConnector;
use crate::external::postgres::PostgresConnector;
use crate::http::HttpState;
use crate::kube_error::Described;
use crate::leader::LeaseLock;
use crate::metrics::Metrics;

/// Why the operator stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable kubeconfig or in-cluster config.
    #[error("failed to create the kubernetes client: {}", Described(.0))]
    Client(#[source] kube::Error),
    /// The CRD is not installed.
    #[error(
        "the CdcPipeline CRD (cdcpipelines.cdcstar.dev) is not installed in this cluster; install it with \
         `cdcstar-operator crd | kubectl apply --server-side -f -` or through the Helm chart, then restart"
    )]
    CrdMissing,
    /// Listing CdcPipelines failed for another reason (RBAC, connectivity).
    #[error("failed to list cdcpipelines at startup: {}", Described(.0))]
    StartupCheck(#[source] kube::Error),
    /// The HTTP endpoints could not be served.
    #[error("failed to serve metrics and probes on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The SIGTERM and SIGINT handlers could not be installed.
    #[error("failed to listen for SIGTERM and SIGINT: {0}")]
    Signals(#[source] std::io::Error),
    /// Another replica took the lease or it could not be renewed in time.
    #[error("lost leadership of lease {0}; exiting so that only the new leader reconciles")]
    LeadershipLost(String),
}

/// Fails with [`RunError::CrdMissing`] when the API server does not serve CdcPipelines.
pub async fn check_crd_installed(client: &Client, namespace: Option<&str>) -> Result<(), RunError> {
    let api: Api<CdcPipeline> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(RunError::CrdMissing),
        Err(error) => Err(RunError::StartupCheck(error)),
    }
}

/// Makes ring the process's rustls crypto provider. Explicit, because rustls refuses to guess when a
/// build enables more than one provider, and panics at the first TLS connection instead.
pub fn install_crypto_provider() {
    // NB: an Err only says a provider is installed already (a second call, or a test harness).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `cdcstar-operator run`.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    install_crypto_provider();
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let namespace = Some(args.watch_namespace.clone()).filter(|n| !n.is_empty());
    check_crd_installed(&client, namespace.as_deref()).await?;

    let (stop, stopping) = watch::channel(false);
    let signals = ShutdownSignals::install().map_err(RunError::Signals)?;
    let signal_stop = stop.clone();
    signals.spawn_then(move || {
        let _ = signal_stop.send(true);
    });

    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::register(&mut registry));
    let ready = Arc::new(AtomicBool::new(false));
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.metrics_port));
    let listener_state = HttpState {
        registry: Arc::new(registry),
        ready: ready.clone(),
    };
    let http = tokio::spawn(probes::serve_on(
        addr,
        Arc::new(listener_state),
        raised(stopping.clone()),
    ));

    let identity = args
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("cdcstar-operator-{}", std::process::id()));
    let lease = args.leader_election.then(|| {
        let lease_namespace = args
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_owned());
        LeaseLock::new(
            Api::namespaced(client.clone(), &lease_namespace),
            &args.lease_name,
            &identity,
            args.lease_timing(),
        )
    });
    // A standby replica is ready: it serves probes and takes over when the leader goes away.
    ready.store(true, Ordering::Relaxed);

    let lost = Arc::new(AtomicBool::new(false));
    if let Some(lease) = &lease {
        tracing::info!(lease = %args.lease_name, identity = %identity, "waiting for leadership");
        tokio::select! {
            () = lease.acquire() => {},
            () = raised(stopping.clone()) => {
                http.abort();
                return Ok(());
            }
        }
        tracing::info!(identity = %identity, "leading");
        metrics.leader.set(1);
        let renewer = lease.clone();
        let lost_flag = lost.clone();
        let lost_stop = stop.clone();
        tokio::spawn(async move {
            renewer.keep_renewing().await;
            lost_flag.store(true, Ordering::SeqCst);
            let _ = lost_stop.send(true);
        });
    }

    let ctx = Arc::new(Context::new(
        client.clone(),
        args.operator_config(),
        Arc::new(PostgresConnector),
        Arc::new(ClickHouseConnector),
        metrics.clone(),
        Reporter {
            controller: crate::FIELD_MANAGER.to_owned(),
            instance: Some(identity.clone()),
        },
    ));
    tracing::info!(
        namespace = namespace.as_deref().unwrap_or("<all>"),
        "controller starting"
    );
    controller::run(ctx, namespace, raised(stopping)).await;
    metrics.leader.set(0);

    if lost.load(Ordering::SeqCst) {
        return Err(RunError::LeadershipLost(args.lease_name));
    }
    if let Some(lease) = &lease
        && let Err(error) = lease.release().await
    {
        tracing::warn!(%error, "failed to release the lease; the next leader waits for it to expire");
    }
    match http.await {
        Ok(Ok(())) | Err(_) => {}
        Ok(Err(source)) => return Err(RunError::Http { addr, source }),
    }
    tracing::info!("stopped");
    Ok(())
}
