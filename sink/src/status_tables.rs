//! What the sink reports into the status tables beside the star tables (`cdcstar_crds::status_tables`
//! holds their DDL and the queries that read them). After a flush has written its rows: the values
//! the flush replaced under their column's `onUnrepresentable` policy, added to
//! `cdcstar_value_adjustments`, and the highest commit position the flush applied per topic
//! partition, written to `cdcstar_partition_positions`; at startup, a zero position for every
//! partition of the pipeline's topics. The `cdcstar_watermark` view over the positions is the
//! pipeline's "consistent up to"; the operator reads both into the pipeline's status.

use std::collections::BTreeMap;

use cdcstar_crds::star_model::{StarModel, TableId};
use cdcstar_crds::status_tables::{
    PARTITION_POSITIONS, StatusTable, VALUE_ADJUSTMENTS, VERIFICATION_KEYS_KEPT, VERIFICATIONS,
    watermark_query,
};
pub use cdcstar_crds::status_tables::{Verification, Watermark};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::route::CommitPosition;
use crate::store::{Store, StoreError};

/// `DateTime64(6, 'UTC')` as the status tables' JSON rows carry it.
const MICROS_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// `DateTime64(3, 'UTC')` as the status tables' JSON rows carry it.
const MILLIS_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// Writes one pipeline's rows of the status tables.
#[derive(Debug, Clone)]
pub struct StatusWriter {
    store: Store,
    pipeline: String,
}

impl StatusWriter {
    /// Writes through `store` (whose database is the star schema's) as `pipeline`
    /// (`CdcPipeline::status_key`).
    pub fn new(store: Store, pipeline: String) -> Self {
        StatusWriter { store, pipeline }
    }

    /// Adds `counts` (values replaced per star table and index in its `columns`) as seen at `at`;
    /// nothing when there are none.
    pub async fn record_adjustments(
        &self,
        plan: &StarModel,
        counts: &BTreeMap<(TableId, usize), u64>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert(
            &VALUE_ADJUSTMENTS,
            adjustment_rows(&self.pipeline, plan, counts, at),
        )
        .await
    }

    /// Writes `positions`, the highest applied per (topic, partition), as of `at`; nothing when
    /// there are none.
    pub async fn record_positions(
        &self,
        positions: &[(&str, i32, CommitPosition)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert(
            &PARTITION_POSITIONS,
            position_rows(&self.pipeline, positions, at),
        )
        .await
    }

    /// Writes the result of a verification, one row per star table, as of `at`.
    pub async fn record_verification(
        &self,
        tables: &[crate::verify::TableReport],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.insert(
            &VERIFICATIONS,
            verification_rows(&self.pipeline, tables, at),
        )
        .await
    }

    /// Inserts `rows` of `table` (as `JSONEachRow`); nothing when there are none.
    async fn insert(
        &self,
        table: &StatusTable,
        rows: Vec<serde_json::Value>,
    ) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut body = Vec::new();
        for row in rows {
            // NB: a `Value` always serialises.
            let _ = serde_json::to_writer(&mut body, &row);
            body.push(b'\n');
        }
        self.store
            .insert_formatted(table.name, table.insert_statement(), body)
            .await
    }

    /// The pipeline's watermark as the view computes it, `None` before any position was written.
    pub async fn watermark(&self) -> Result<Option<Watermark>, StoreError> {
        let query = watermark_query(self.store.database());
        let rows = self.pipeline_rows(&query, WATERMARK_NAME).await?;
        Ok(rows.into_iter().next())
    }

    /// The newest verification of each star table of the pipeline (none before the verifier ran).
    pub async fn verifications(&self) -> Result<Vec<Verification>, StoreError> {
        let query = cdcstar_crds::status_tables::verifications_query(self.store.database());
        self.pipeline_rows(&query, cdcstar_crds::status_tables::VERIFICATIONS.name)
            .await
    }

    /// The rows of `query`, a read of the status table or view `table` taking the pipeline as its
    /// `{pipeline:String}` parameter.
    async fn pipeline_rows<T>(&self, query: &str, table: &str) -> Result<Vec<T>, StoreError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.store
            .client()
            .query(query)
            .param("pipeline", &self.pipeline)
            .fetch_all::<T>()
            .await
            .map_err(StoreError::clickhouse("select", table))
    }
}

const WATERMARK_NAME: &str = cdcstar_crds::status_tables::WATERMARK.name;

/// The rows of a verification's `tables`.
pub fn verification_rows(
    pipeline: &str,
    tables: &[crate::verify::TableReport],
    at: DateTime<Utc>,
) -> Vec<serde_json::Value> {
    let verified_at = at.format(MILLIS_FORMAT).to_string();
    let mut rows = Vec::new();
    for table in tables {
        let keys: Vec<&str> = table
            .mismatches
            .iter()
            .take(VERIFICATION_KEYS_KEPT)
            .map(|m| m.key.as_str())
            .collect();
        let row = json!({
            "pipeline": pipeline,
            "table": table.table,
            "verified_at": verified_at,
            "rows_checked": table.rows_checked,
            "mismatches": table.mismatches.len(),
            "mismatch_keys": keys,
            "repaired": table.repaired.len(),
            "skipped": table.skipped.len(),
            "not_verified": table.not_verified.clone().unwrap_or_default(),
        });
        rows.push(row);
    }
    rows
}

/// The rows of `positions`.
pub fn position_rows(
    pipeline: &str,
    positions: &[(&str, i32, CommitPosition)],
    at: DateTime<Utc>,
) -> Vec<serde_json::Value> {
    let applied_at = at.format(MILLIS_FORMAT).to_string();
    let mut rows = Vec::new();
    for (topic, partition, position) in positions {
        let commit_time = DateTime::from_timestamp_micros(position.time_micros)
            .unwrap_or_default()
            .format(MICROS_FORMAT)
            .to_string();
        let row = json!({
            "pipeline": pipeline,
            "topic": topic,
            "partition": partition,
            "commit_lsn": position.lsn,
            "commit_time": commit_time,
            "applied_at": applied_at,
        });
        rows.push(row);
    }
    rows
}

/// The rows of `counts`, one per star table and column, with the column's policy.
pub fn adjustment_rows(
    pipeline: &str,
    plan: &StarModel,
    counts: &BTreeMap<(TableId, usize), u64>,
    at: DateTime<Utc>,
) -> Vec<serde_json::Value> {
    let last_seen = at.format(MILLIS_FORMAT).to_string();
    let mut rows = Vec::new();
    for (&(table, column), &values) in counts {
        let table = &plan.tables[table];
        let column = &table.columns[column];
        let row = json!({
            "pipeline": pipeline,
            "table": table.name,
            "column": column.name,
            "policy": column.on_unrepresentable.as_str(),
            "values": values,
            "last_seen": last_seen,
        });
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop;
    use chrono::TimeZone;

    #[test]
    fn each_position_is_one_row_with_its_commit_time_in_microseconds() {
        let at = Utc.timestamp_millis_opt(1_767_225_600_123).unwrap();
        let rows = position_rows(
            "default/shop",
            &[
                (
                    "shop.order",
                    2,
                    CommitPosition {
                        lsn: 0x16_B374_D848,
                        time_micros: 1_767_225_599_000_001,
                    },
                ),
                ("shop.customer", 0, CommitPosition::default()),
            ],
            at,
        );
        assert_eq!(
            rows,
            [
                json!({"pipeline": "default/shop", "topic": "shop.order", "partition": 2,
                       "commit_lsn": 0x16_B374_D848_u64, "commit_time": "2025-12-31 23:59:59.000001",
                       "applied_at": "2026-01-01 00:00:00.123"}),
                json!({"pipeline": "default/shop", "topic": "shop.customer", "partition": 0,
                       "commit_lsn": 0, "commit_time": "1970-01-01 00:00:00.000000",
                       "applied_at": "2026-01-01 00:00:00.123"}),
            ]
        );
    }

    #[test]
    fn each_adjusted_column_is_one_row_with_its_policy_and_time() {
        let mut pipeline = shop();
        pipeline.spec.star_schema.facts[0].columns[4].on_unrepresentable =
            Some(cdcstar_crds::OnUnrepresentable::Null);
        let plan = StarModel::for_pipeline(&pipeline.spec).unwrap();
        let order_fact = plan.table_id("order_fact").unwrap();
        let column = |name: &str| {
            plan.tables[order_fact]
                .columns
                .iter()
                .position(|c| c.name == name)
                .unwrap()
        };
        let counts = [
            ((order_fact, column("total")), 2),
            ((order_fact, column("order_date")), 3),
        ]
        .into();
        let at = Utc.timestamp_millis_opt(1_767_225_600_123).unwrap();
        let rows = adjustment_rows("default/shop", &plan, &counts, at);
        assert_eq!(
            rows,
            [
                json!({"pipeline": "default/shop", "table": "order_fact", "column": "total",
                       "policy": "clamp", "values": 2,
                       "last_seen": "2026-01-01 00:00:00.123"}),
                json!({"pipeline": "default/shop", "table": "order_fact", "column": "order_date",
                       "policy": "null", "values": 3, "last_seen": "2026-01-01 00:00:00.123"}),
            ]
        );
    }
}
