//! Repair: re-emitting the mismatching rows to the pipeline's topics so the running sink applies them.
//! Nothing is written to Postgres.
//!
//! For each key: an `update` envelope built from the current Postgres row (read `FOR SHARE`, so no
//! writer changes it while its position is taken), or a `delete` when Postgres has no such row,
//! with `lsn` = `pg_current_wal_insert_lsn()` read under those locks. That position is above every
//! change already written to the WAL and below every change written after the locks are released,
//! so by the version rules (docs/sink.md) the repair beats every version ClickHouse holds of the row
//! and loses to every later change of it. The envelope carries no `commitLsn`/`commitTime`: it is no
//! commit and must not move the partition's watermark. It goes to the row's topic with the capture's
//! message key (so, by the capture's partitioner, to the partition of the row's other changes).

use std::time::Duration;

use cdcstar_crds::envelope::{LIBRDKAFKA_PARTITIONER, Metadata};
use cdcstar_crds::postgres::quote_ident;
use cdcstar_crds::star_model::TableModel;
use cdcstar_crds::{CdcPipeline, Envelope, Lsn, Operation};
use cdcstar_runtime::kafka::KafkaConnection;
use cdcstar_source::key::message_key;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Map;

use crate::route::value::Value;
use crate::verify::VerifyError;
use crate::verify::compare::key_text;
use crate::verify::source::{Payload, Source, key_json, key_literal, payload_key_text};

/// How long one repair message may wait for the broker's acknowledgement.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

/// Produces the repair envelopes.
pub struct Repairer {
    producer: FutureProducer,
}

impl std::fmt::Debug for Repairer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repairer").finish_non_exhaustive()
    }
}

impl Repairer {
    /// A producer on `connection` partitioning as the native capture does.
    pub fn new(connection: &KafkaConnection) -> Result<Self, VerifyError> {
        let producer = connection
            .client_config()
            .set("acks", "all")
            .set("partitioner", LIBRDKAFKA_PARTITIONER)
            .create()
            .map_err(|e| {
                VerifyError::Kafka(format!("failed to create the repair producer: {e}"))
            })?;
        Ok(Repairer { producer })
    }

    /// Re-emits `keys` of star table `table` from their current Postgres rows; returns the LSN the
    /// envelopes carry. Every envelope is acknowledged when this returns.
    pub async fn repair(
        &self,
        source: &mut Source,
        pipeline: &CdcPipeline,
        primary_key: &str,
        table: &TableModel,
        keys: &[Value],
    ) -> Result<u64, VerifyError> {
        let key_column = quote_ident(&table.key_column().source);
        let literals: Vec<String> = keys.iter().map(key_literal).collect();
        source.text_rows("BEGIN").await?;
        let read = async {
            let rows = source
                .payloads(
                    &table.source,
                    Some(&format!("{key_column} IN ({})", literals.join(", "))),
                    "FOR SHARE",
                )
                .await?;
            let lsn = source.current_lsn().await?;
            Ok::<_, VerifyError>((rows, lsn))
        }
        .await;
        let end = if read.is_ok() { "COMMIT" } else { "ROLLBACK" };
        source.text_rows(end).await?;
        let (rows, lsn) = read?;

        let topic = pipeline.topic_for_table(&table.source);
        let mut envelopes = Vec::with_capacity(keys.len());
        for key in keys {
            let found = rows.iter().find(|payload| {
                payload
                    .get(&table.key_column().source)
                    .is_some_and(|k| payload_key_text(k) == key_text(key))
            });
            let (operation, payload) = match found {
                Some(payload) => (Operation::Update, payload.clone()),
                None => {
                    let mut payload = Map::new();
                    payload.insert(table.key_column().source.clone(), key_json(key));
                    (Operation::Delete, payload)
                }
            };
            envelopes.push(envelope(&table.source, operation, lsn, payload));
        }
        let sends = envelopes.iter().map(|envelope| {
            let body = serde_json::to_vec(envelope).expect("an envelope serialises");
            let key = message_key(&envelope.payload, primary_key);
            let topic = topic.clone();
            async move {
                let mut record = FutureRecord::to(&topic).payload(&body);
                if let Some(key) = &key {
                    record = record.key(key);
                }
                self.producer
                    .send(record, PRODUCE_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| {
                        VerifyError::Kafka(format!("failed to produce to {topic}: {e}"))
                    })
            }
        });
        for sent in futures::future::join_all(sends).await {
            sent?;
        }
        Ok(lsn)
    }
}

/// A repair envelope: `operation` of `payload` at `lsn`, without a commit position.
pub fn envelope(table: &str, operation: Operation, lsn: u64, payload: Payload) -> Envelope {
    Envelope {
        metadata: Metadata {
            table: table.to_owned(),
            operation,
            lsn: Some(Lsn(lsn)),
            commit_lsn: None,
            tx_seq: None,
            commit_time: None,
            unchanged_toast: Vec::new(),
            old_key: None,
        },
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::route;
    use crate::test_fixtures::shop;
    use cdcstar_crds::star_model::StarModel;
    use serde_json::json;

    #[test]
    fn a_repair_envelope_is_a_change_at_its_lsn_without_a_commit_position() {
        let plan = StarModel::for_pipeline(&shop().spec).unwrap();
        let payload = json!({"id": 3, "name": "Ann"}).as_object().unwrap().clone();
        let body =
            serde_json::to_vec(&envelope("customer", Operation::Update, 0x50, payload)).unwrap();
        let routed = route(&plan, &body).unwrap();
        assert_eq!(
            routed.position, None,
            "a repair must not move the watermark"
        );
        assert_eq!(routed.changes[0].version, 0x50);
        assert!(!routed.changes[0].deleted);

        let key = json!({"id": 3}).as_object().unwrap().clone();
        let body = serde_json::to_vec(&envelope("customer", Operation::Delete, 0x60, key)).unwrap();
        let change = &route(&plan, &body).unwrap().changes[0];
        assert!(change.deleted);
        assert_eq!(change.key, Value::UInt(3));
    }

    #[test]
    fn payload_keys_read_as_converted_keys_print() {
        assert_eq!(payload_key_text(&json!(7)), key_text(&Value::UInt(7)));
        assert_eq!(
            payload_key_text(&json!("A-1")),
            key_text(&Value::String("A-1".into()))
        );
    }
}
