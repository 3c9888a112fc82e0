//! `serve`: optional migrations, the pool, the API and metrics listeners, and graceful shutdown
//! on SIGTERM/SIGINT (stop accepting, let in-flight requests finish within the grace period, close
//! the pool).

use cdcstar_runtime::shutdown::{ShutdownSignals, raised};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{AppState, HttpSettings, InvalidOrigin, app};
use crate::config::{ClickHouseArgs, DatabaseArgs, ServerArgs};
use crate::connections::Connections;
use crate::db::{self, DbError};
use crate::metrics::{self, Metrics};
use crate::star::StarReader;

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database could not be prepared or reached.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A CORS origin is invalid.
    #[error(transparent)]
    Cors(#[from] InvalidOrigin),
    /// A listener could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A server failed while running.
    #[error("{name} server failed")]
    Serve {
        /// `api` or `metrics`.
        name: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The signal handlers could not be installed.
    #[error("failed to install signal handlers")]
    Signals(#[source] std::io::Error),
}

/// Runs the API until SIGTERM or SIGINT.
pub async fn run(
    database: &DatabaseArgs,
    server: &ServerArgs,
    clickhouse: &ClickHouseArgs,
) -> Result<(), ServerError> {
    if server.auto_init_db {
        let report = db::init_db(&database.database_url, false).await?;
        tracing::info!(
            created_database = report.created_database,
            applied = ?report.applied,
            "database initialised (AUTO_INIT_DB)"
        );
    }
    let pool = db::connect(
        &database.database_url,
        database.db_max_connections,
        database.db_acquire_timeout,
    )
    .await?;
    let connections = Connections::new(pool);
    let state = AppState {
        db: connections.clone(),
        metrics: Arc::new(Metrics::new()),
        http: HttpSettings::new(&server.cors_origins, server.request_timeout)?,
        star: StarReader::from_args(clickhouse),
    };
    let metrics_router = metrics::router(state.metrics.clone());

    let api_addr = SocketAddr::new(server.host, server.port);
    let metrics_addr = SocketAddr::new(server.host, server.metrics_port);
    let api_listener = bind(api_addr).await?;
    let metrics_listener = bind(metrics_addr).await?;
    tracing::info!(
        %api_addr, %metrics_addr,
        database = %db::describe_target(&database.database_url),
        star_view = state.star.as_ref().map_or("off (no CLICKHOUSE_URL)", |star| star.database()),
        "serving the API (docs at /docs and /redoc, the test client at /client, metrics at /metrics on the metrics port)"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown_signals = ShutdownSignals::install().map_err(ServerError::Signals)?;
    let signals = shutdown_signals.spawn_then(move || {
        let _ = stop_tx.send(true);
    });

    let api = axum::serve(api_listener, app(state))
        .with_graceful_shutdown(raised(stop_rx.clone()))
        .into_future();
    let metrics_server = axum::serve(metrics_listener, metrics_router)
        .with_graceful_shutdown(raised(stop_rx.clone()))
        .into_future();
    let grace = server.shutdown_grace;
    let stopped = raised(stop_rx);
    let deadline = async move {
        stopped.await;
        tokio::time::sleep(grace).await;
    };

    let outcome = tokio::select! {
        results = async { tokio::join!(api, metrics_server) } => {
            let (api, metrics) = results;
            api.map_err(|source| ServerError::Serve { name: "api", source })
                .and(metrics.map_err(|source| ServerError::Serve { name: "metrics", source }))
        }
        () = deadline => {
            tracing::warn!(?grace, "in-flight requests did not finish within the grace period");
            Ok(())
        }
    };
    connections.close().await;
    signals.abort();
    tracing::info!("stopped");
    outcome
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}
