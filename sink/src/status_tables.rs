//! What the sink reports into the status tables beside the star tables (`cdcstar_crds::status_tables`
//! holds their DDL and the queries that read them): after a flush has written its rows, the values
//! the flush replaced under their column's `onUnrepresentable` policy, added to
//! `cdcstar_value_adjustments`. The operator reads them into the pipeline's status.

use std::collections::BTreeMap;

use cdcstar_crds::star_model::{StarModel, TableId};
use cdcstar_crds::status_tables::VALUE_ADJUSTMENTS;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::store::{Store, StoreError};

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
        if counts.is_empty() {
            return Ok(());
        }
        self.store
            .insert_formatted(
                VALUE_ADJUSTMENTS.name,
                VALUE_ADJUSTMENTS.insert_statement(),
                adjustment_rows(&self.pipeline, plan, counts, at),
            )
            .await
    }
}

/// The `JSONEachRow` body of `counts`, one row per star table and column, with the column's policy.
pub fn adjustment_rows(
    pipeline: &str,
    plan: &StarModel,
    counts: &BTreeMap<(TableId, usize), u64>,
    at: DateTime<Utc>,
) -> Vec<u8> {
    let last_seen = at.format(MILLIS_FORMAT).to_string();
    let mut body = Vec::new();
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
        // NB: a `Value` always serialises.
        let _ = serde_json::to_writer(&mut body, &row);
        body.push(b'\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::shop;
    use chrono::TimeZone;

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
        let body = adjustment_rows("default/shop", &plan, &counts, at);
        let rows: Vec<serde_json::Value> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
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
