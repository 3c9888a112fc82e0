//! The capture's ordinary SQL sessions on the source database (opened at its
//! `cdcstar_source::address::DatabaseAddress`, with the settings that make text output
//! deterministic): the slot's state, the publication (for local runs with `--create-slot`),
//! heartbeats and the retained-WAL measurement.

use std::collections::BTreeMap;

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::envelope::Lsn;
use cdcstar_crds::postgres::{self, QualifiedTable, RowFilterState};
pub use cdcstar_crds::postgres::{quote_ident, quote_literal};
use cdcstar_source::address::SourceError;
use tokio_postgres::Client;

/// Prefix of the capture's logical decoding messages.
pub const HEARTBEAT_PREFIX: &str = "cdcstar";
/// What a heartbeat message's content starts with; the time it was written follows.
pub const HEARTBEAT_CONTENT: &str = "heartbeat ";

/// The time a heartbeat message with `prefix` and `content` was written, microseconds since the Unix
/// epoch; `None` for any other message (another prefix, or a heartbeat of an earlier version without
/// its time).
pub fn heartbeat_time(prefix: &str, content: &[u8]) -> Option<i64> {
    if prefix != HEARTBEAT_PREFIX {
        return None;
    }
    std::str::from_utf8(content.strip_prefix(HEARTBEAT_CONTENT.as_bytes())?)
        .ok()?
        .parse()
        .ok()
}

/// What the server says about the pipeline's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    /// Output plugin (`pgoutput` expected).
    pub plugin: String,
    /// Position confirmed by the consumer.
    pub confirmed_flush: Lsn,
}

/// The slot's state, `None` when it does not exist.
pub async fn slot_state(client: &Client, slot: &str) -> Result<Option<SlotState>, SourceError> {
    let row = client
        .query_opt(
            "SELECT plugin::text, confirmed_flush_lsn::text FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(SourceError::sql(format!("read replication slot {slot}")))?;
    let Some(row) = row else { return Ok(None) };
    let plugin: Option<String> = row.get(0);
    let confirmed: Option<String> = row.get(1);
    let confirmed_flush = confirmed
        .as_deref()
        .unwrap_or("0/0")
        .parse()
        .map_err(|err| SourceError::State(format!("slot {slot}: {err}")))?;
    Ok(Some(SlotState {
        plugin: plugin.unwrap_or_default(),
        confirmed_flush,
    }))
}

/// Takes the publication and the tables' replica identity to what `pipeline` declares (creates the
/// publication, sets its tables, sets `REPLICA IDENTITY FULL` when asked), with the same statements
/// the operator runs (`cdcstar_crds::postgres`).
pub async fn ensure_publication(
    client: &Client,
    pipeline: &CdcPipeline,
) -> Result<(), SourceError> {
    let publication = pipeline.publication_name();
    let exists = client
        .query_opt(postgres::PUBLICATION_EXISTS_QUERY, &[&publication])
        .await
        .map_err(SourceError::sql(format!("read publication {publication}")))?
        .is_some();
    let mut filters = RowFilterState::default();
    let current = if exists {
        let (tables, published) = publication_tables(client, &publication).await?;
        filters.published = published;
        Some(tables)
    } else {
        None
    };
    if let Some(probe) = postgres::row_filter_probe(pipeline) {
        // Postgres's own print of the declared filters, from a publication that never commits.
        client
            .batch_execute("BEGIN")
            .await
            .map_err(SourceError::sql("begin the row filter probe"))?;
        let probed = match client.batch_execute(&probe).await {
            Ok(()) => publication_tables(client, postgres::ROW_FILTER_PROBE_PUBLICATION).await,
            Err(source) => Err(SourceError::Sql {
                action: "check the declared row filters".into(),
                source,
            }),
        };
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(SourceError::sql("end the row filter probe"))?;
        filters.declared = probed?.1;
    }
    let schema = &pipeline.spec.source.schema;
    let tables = pipeline.source_table_names();
    let identities: BTreeMap<String, String> = client
        .query(postgres::REPLICA_IDENTITY_QUERY, &[schema, &tables])
        .await
        .map_err(SourceError::sql("read replica identities"))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let statements = postgres::reconcile_replica_identity(pipeline, &identities)
        .into_iter()
        .chain(postgres::reconcile_publication(
            pipeline,
            current.as_ref(),
            &filters,
        ));
    for statement in statements {
        client
            .batch_execute(&statement)
            .await
            .map_err(SourceError::sql(format!("run {statement}")))?;
        tracing::info!(%statement, "publication setup");
    }
    Ok(())
}

/// The tables of `publication`, and the row filters of those that have one.
async fn publication_tables(
    client: &Client,
    publication: &str,
) -> Result<postgres::PublishedTables, SourceError> {
    let rows = client
        .query(postgres::PUBLICATION_TABLES_QUERY, &[&publication])
        .await
        .map_err(SourceError::sql(format!(
            "list tables of publication {publication}"
        )))?;
    Ok(postgres::published_tables(
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2))),
    ))
}

/// The tables of `tables` that publication `publication` does not publish.
pub async fn tables_missing_from_publication(
    client: &Client,
    publication: &str,
    schema: &str,
    tables: &[String],
) -> Result<Vec<String>, SourceError> {
    let (published, _) = publication_tables(client, publication).await?;
    Ok(tables
        .iter()
        .filter(|t| !published.contains(&QualifiedTable::new(schema, t.as_str())))
        .cloned()
        .collect())
}

/// Writes a non-transactional heartbeat message to the WAL, its content [`HEARTBEAT_CONTENT`]
/// followed by the server's clock in microseconds since the Unix epoch (read back by
/// [`heartbeat_time`]); returns its LSN.
pub async fn emit_heartbeat(client: &Client) -> Result<Lsn, SourceError> {
    let row = client
        .query_one(
            "SELECT pg_logical_emit_message(false, $1, \
             $2 || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)::text",
            &[&HEARTBEAT_PREFIX, &HEARTBEAT_CONTENT],
        )
        .await
        .map_err(SourceError::sql("emit heartbeat message"))?;
    let text: String = row.get(0);
    text.parse()
        .map_err(|err| SourceError::State(format!("heartbeat: {err}")))
}

/// WAL bytes slot `slot` retains: `pg_current_wal_lsn() - confirmed_flush_lsn`.
pub async fn retained_wal_bytes(client: &Client, slot: &str) -> Result<Option<i64>, SourceError> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8 FROM pg_replication_slots \
             WHERE slot_name = $1 AND database = current_database()",
            &[&slot],
        )
        .await
        .map_err(SourceError::sql(format!(
            "measure WAL retained by slot {slot}"
        )))?;
    Ok(row.and_then(|row| row.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_message_carries_its_time_and_others_do_not() {
        assert_eq!(
            heartbeat_time("cdcstar", b"heartbeat 1767225600000001"),
            Some(1_767_225_600_000_001)
        );
        assert_eq!(
            heartbeat_time("cdcstar", b"heartbeat"),
            None,
            "older capture"
        );
        assert_eq!(heartbeat_time("other", b"heartbeat 1"), None);
        assert_eq!(heartbeat_time("cdcstar", b"heartbeat soon"), None);
    }
}
