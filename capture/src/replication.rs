//! The replication connection: creating the slot (optionally exporting its snapshot) and starting
//! the pgoutput stream at the slot's confirmed position, through the `pgwire-replication` crate.

use std::time::Duration;

use cdcstar_crds::envelope::Lsn;
use cdcstar_source::address::{DatabaseAddress, SESSION_OPTIONS};
use pgwire_replication::{PgWireError, ReplicationClient, ReplicationConfig, TlsConfig};

/// Errors on the replication connection.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    /// The server or the connection failed.
    #[error("replication connection to {target} failed while trying to {action}: {source}")]
    Wire {
        /// `host:port/db`.
        target: String,
        /// What was being done.
        action: &'static str,
        source: PgWireError,
    },
    /// The server answered something unexpected.
    #[error("unexpected answer to {command}: {detail}")]
    Protocol {
        /// The replication command.
        command: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// Settings of the replication stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub slot: String,
    pub publication: String,
    /// How often standby status updates carry a raised position.
    pub status_interval: Duration,
}

/// A slot just created with its snapshot exported, and the session holding the export.
pub struct CreatedSlot {
    /// The gated session: the export stays valid until it runs another command, so import it
    /// (`SET TRANSACTION SNAPSHOT`) before calling [`CreatedSlot::start`].
    client: ReplicationClient,
    /// The slot's consistent point: changes committed after it are streamed.
    pub consistent_point: Lsn,
    /// Name of the exported snapshot, when one was asked for.
    pub snapshot_name: Option<String>,
}

cdcstar_runtime::debug_fields!(CreatedSlot {
    consistent_point,
    snapshot_name
});

impl CreatedSlot {
    /// Starts streaming on the session that created the slot.
    pub async fn start(
        mut self,
        address: &DatabaseAddress,
    ) -> Result<ReplicationClient, ReplicationError> {
        self.client
            .start()
            .await
            .map_err(wire(address, "start replication"))?;
        self.client
            .wait_started()
            .await
            .map_err(wire(address, "start replication"))?;
        Ok(self.client)
    }
}

/// The error of `action` on the replication session to `address`.
fn wire(
    address: &DatabaseAddress,
    action: &'static str,
) -> impl FnOnce(PgWireError) -> ReplicationError {
    let target = address.describe();
    move |source| ReplicationError::Wire {
        target,
        action,
        source,
    }
}

fn config(address: &DatabaseAddress, settings: &StreamSettings, start: Lsn) -> ReplicationConfig {
    let start = pgwire_replication::Lsn::from_u64(start.0);
    ReplicationConfig::new(
        address.host(),
        address.user(),
        address.password(),
        address.database(),
        settings.slot.clone(),
        settings.publication.clone(),
    )
    .with_port(address.port())
    .with_tls(TlsConfig::disabled())
    .with_start_lsn(start)
    .with_ack_lsn(start)
    .with_status_interval(settings.status_interval)
    .with_wakeup_interval(Duration::from_secs(10))
    .with_options(SESSION_OPTIONS)
    .with_application_name("cdcstar-capture")
}

/// Creates the slot (pgoutput) on a replication session, exporting its snapshot when
/// `export_snapshot` is set. The stream is not started yet.
pub async fn create_slot(
    address: &DatabaseAddress,
    settings: &StreamSettings,
    export_snapshot: bool,
) -> Result<CreatedSlot, ReplicationError> {
    let mut client = ReplicationClient::connect_gated(config(address, settings, Lsn(0)))
        .await
        .map_err(wire(address, "open a replication session"))?;
    let export = if export_snapshot {
        "EXPORT_SNAPSHOT"
    } else {
        "NOEXPORT_SNAPSHOT"
    };
    let command = format!(
        "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {export}",
        crate::source::quote_ident(&settings.slot)
    );
    tracing::info!(slot = %settings.slot, "creating replication slot (waits for running write transactions to end)");
    let rows = client
        .simple_query(&command)
        .await
        .map_err(wire(address, "create the replication slot"))?;
    let protocol = |detail: String| ReplicationError::Protocol {
        command: "CREATE_REPLICATION_SLOT",
        detail,
    };
    let row = rows
        .into_iter()
        .next()
        .ok_or_else(|| protocol("no row".into()))?;
    let text = |index: usize| {
        row.get(index)
            .cloned()
            .flatten()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    };
    let consistent_point = text(1)
        .ok_or_else(|| protocol("no consistent point".into()))?
        .parse::<Lsn>()
        .map_err(|err| protocol(err.to_string()))?;
    let snapshot_name = text(2).filter(|_| export_snapshot);
    tracing::info!(slot = %settings.slot, %consistent_point, snapshot = ?snapshot_name, "created replication slot");
    Ok(CreatedSlot {
        client,
        consistent_point,
        snapshot_name,
    })
}

/// Starts streaming slot `settings.slot` from `start` (its confirmed position).
pub async fn start_stream(
    address: &DatabaseAddress,
    settings: &StreamSettings,
    start: Lsn,
) -> Result<ReplicationClient, ReplicationError> {
    let mut client = ReplicationClient::connect(config(address, settings, start))
        .await
        .map_err(wire(address, "open a replication session"))?;
    client
        .wait_started()
        .await
        .map_err(wire(address, "start replication"))?;
    Ok(client)
}
