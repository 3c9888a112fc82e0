//! `cdcstar-sink verify`: continuous verification of the star schema against Postgres.
//!
//! Each round walks every star table by ranges of its key, [`VerifyArgs::chunk_rows`] keys at a
//! time: on Postgres `WHERE key > last ORDER BY key LIMIT n` over the table's source, on ClickHouse
//! the same key range (`FINAL`, `is_deleted = 0`). Per chunk it compares the row counts and a
//! checksum over the copied and the lookup columns ([`compare`]), the expected side computed from
//! Postgres exactly as the sink would write it ([`source`]); a chunk that differs is compared key by
//! key. A differing key is only a *suspect*: it is re-checked once the pipeline's watermark has
//! passed the first observation, and reported only if it still differs then while its source rows
//! did not change in between (the rule is spelled out on [`Verifier::recheck`] and in docs/sink.md).
//! With `--repair`, confirmed mismatches are re-emitted to the topics ([`repair`]) and checked again.
//! Nothing is written to Postgres; in ClickHouse only the last round's result, one row per table in
//! the `cdcstar_verifications` status table, which the operator reads into the pipeline's status.
//!
//! Over 400 lines: the round, the re-check rule and the resync walk share the verifier's state and
//! its chunked reads of both sides; the comparison, the source reads and the repair are modules apart.

pub mod compare;
pub mod repair;
pub mod settings;
pub mod source;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::clickhouse_ddl::quote_ident;
use cdcstar_crds::postgres::quote_literal;
use cdcstar_crds::star_model::{StarModel, TableId, TableModel};
use serde::Serialize;

use crate::route::value::{Value, convert, sql_literal};
use crate::status_tables::StatusWriter;
use crate::store::{Store, StoreError, in_list};
use crate::verify::compare::{
    Difference, Rows, by_key, column_name, difference, differing_keys, key_text,
};
use crate::verify::repair::Repairer;
use crate::verify::settings::VerifyArgs;
use crate::verify::source::{
    Source, expected_copies, expected_rows, key_expression, key_literal, payload_key_text,
    unsupported_lookup,
};

/// How often a re-check polls the watermark.
const WATERMARK_POLL: Duration = Duration::from_millis(500);

/// Why verification could not run (exit code 2), as opposed to what it found.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The pipeline file.
    #[error(transparent)]
    Pipeline(#[from] crate::SinkError),
    /// A `--table` that the pipeline does not declare.
    #[error("unknown star table {0:?}: not declared in spec.starSchema")]
    UnknownTable(String),
    /// The source database.
    #[error("postgres: {0}")]
    Source(String),
    /// ClickHouse.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The broker (repair).
    #[error("kafka: {0}")]
    Kafka(String),
}

/// What a verification found, round by round.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `namespace/name` of the pipeline.
    pub pipeline: String,
    pub rounds: Vec<RoundReport>,
}

/// One round over the tables.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundReport {
    /// From 1.
    pub round: usize,
    pub tables: Vec<TableReport>,
}

/// One star table in one round.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    pub table: String,
    /// Source rows compared.
    pub rows_checked: usize,
    /// Chunks read.
    pub chunks: usize,
    /// Keys that still differ after the re-check (and after the repair, with `--repair`).
    pub mismatches: Vec<Mismatch>,
    /// Mismatches that were re-emitted (`--repair`), and equal once the sink applied them.
    pub repaired: Vec<Mismatch>,
    /// Keys that could not be decided, and why.
    pub skipped: Vec<SkippedKey>,
    /// Keys that differed at first sight and were equal at their re-check: changes in flight.
    pub settled: usize,
    /// Keys re-emitted by `--resync` before the table was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resynced: Option<usize>,
    /// The highest position re-emitted envelopes carry (`--resync`).
    #[serde(skip)]
    pub emitted_up_to: u64,
    /// Why the table was not verified at all, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_verified: Option<String>,
}

/// A key that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// The key, as text.
    pub key: String,
    /// How it differs.
    #[serde(flatten)]
    pub difference: Difference,
}

/// A key left undecided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedKey {
    /// The key, as text.
    pub key: String,
    pub reason: String,
}

impl Report {
    /// The last round's mismatches, per table.
    pub fn remaining_mismatches(&self) -> usize {
        self.rounds
            .last()
            .map(|r| r.tables.iter().map(|t| t.mismatches.len()).sum())
            .unwrap_or(0)
    }

    /// The report for people: one line per table and round, one per mismatching or skipped key.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for round in &self.rounds {
            let _ = writeln!(out, "round {} of {}", round.round, self.pipeline);
            for t in &round.tables {
                if let Some(reason) = &t.not_verified {
                    let _ = writeln!(out, "  {}: not verified: {reason}", t.table);
                    continue;
                }
                let _ = writeln!(
                    out,
                    "  {}: {} rows in {} chunks, {} mismatches, {} repaired, {} skipped, \
                     {} settled at the re-check",
                    t.table,
                    t.rows_checked,
                    t.chunks,
                    t.mismatches.len(),
                    t.repaired.len(),
                    t.skipped.len(),
                    t.settled
                );
                if let Some(resynced) = t.resynced {
                    let _ = writeln!(out, "    {resynced} keys re-emitted by the resync first");
                }
                for m in &t.mismatches {
                    let _ = writeln!(out, "    key {}: {}", m.key, m.difference);
                }
                for m in &t.repaired {
                    let _ = writeln!(out, "    key {}: {}, repaired", m.key, m.difference);
                }
                for s in &t.skipped {
                    let _ = writeln!(out, "    key {}: skipped: {}", s.key, s.reason);
                }
            }
        }
        let _ = writeln!(out, "{} mismatches remain", self.remaining_mismatches());
        out
    }
}

/// What a walk over a table's chunks does with each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Compares it, key by key where it differs.
    Verify,
    /// Re-emits every key of it.
    Resync,
}

/// A key that differed, waiting for its re-check.
#[derive(Debug, Clone)]
struct Suspect {
    key: Value,
    /// WAL position read right after the Postgres side was read.
    observed_lsn: u64,
    /// The expected row then (`None`: no row).
    expected: Option<Vec<Value>>,
}

/// The verifier of one pipeline.
#[derive(Debug)]
pub struct Verifier {
    pipeline: CdcPipeline,
    plan: StarModel,
    store: Store,
    status: StatusWriter,
    source: Source,
    repairer: Option<Repairer>,
    args: VerifyArgs,
}

impl Verifier {
    /// Loads the pipeline and connects to Postgres (and, with `--repair`, prepares the producer).
    pub async fn new(args: VerifyArgs) -> Result<Self, VerifyError> {
        let (pipeline, plan) = crate::load_pipeline(&args.pipeline)?;
        for table in &args.tables {
            if plan.table_id(table).is_none() {
                return Err(VerifyError::UnknownTable(table.clone()));
            }
        }
        let store = Store::for_pipeline(&args.services.store_config(&pipeline), &pipeline);
        let status = StatusWriter::new(store.clone(), pipeline.status_key());
        let source =
            Source::connect(&args.database_url, &pipeline, args.mask_salt.as_ref()).await?;
        let repairer = if args.repair || args.resync {
            let connection = args
                .services
                .kafka(&pipeline)
                .map_err(|e| VerifyError::Kafka(e.to_string()))?;
            Some(Repairer::new(&connection)?)
        } else {
            None
        };
        Ok(Verifier {
            pipeline,
            plan,
            store,
            status,
            source,
            repairer,
            args,
        })
    }

    /// Runs every round.
    pub async fn run(&mut self) -> Result<Report, VerifyError> {
        let mut report = Report {
            pipeline: self.pipeline.status_key(),
            rounds: Vec::new(),
        };
        let resynced = if self.args.resync {
            self.resync().await?
        } else {
            Vec::new()
        };
        for round in 1..=self.args.rounds.max(1) {
            if round > 1 {
                tokio::time::sleep(Duration::from_secs(self.args.round_interval_seconds)).await;
            }
            let mut tables = Vec::new();
            for id in self.selected_tables() {
                let mut table = self.verify_table(id, Walk::Verify).await?;
                if round == 1 {
                    table.resynced = resynced.iter().find(|(t, _)| *t == id).map(|(_, n)| *n);
                }
                tables.push(table);
            }
            let found: usize = tables.iter().map(|t| t.mismatches.len()).sum();
            tracing::info!(round, mismatches = found, "round done");
            report.rounds.push(RoundReport { round, tables });
        }
        if let Some(last) = report.rounds.last() {
            self.status
                .record_verification(&last.tables, chrono::Utc::now())
                .await?;
        }
        Ok(report)
    }

    /// The star tables `--table` selects, every one when none is named.
    fn selected_tables(&self) -> Vec<TableId> {
        (0..self.plan.tables.len())
            .filter(|&id| {
                self.args.tables.is_empty() || self.args.tables.contains(&self.plan.tables[id].name)
            })
            .collect()
    }

    /// `--resync`: every key of the selected tables, in Postgres or in ClickHouse, re-emitted from
    /// its current Postgres row (a delete where Postgres has none, or where the row is outside the
    /// table's row filter); returns the keys re-emitted per table once the watermark shows that the
    /// sink consumed all of them (or the timeout passed: the verification that follows says what
    /// did not land).
    async fn resync(&mut self) -> Result<Vec<(TableId, usize)>, VerifyError> {
        let mut resynced = Vec::new();
        let mut emitted_up_to = 0;
        for id in self.selected_tables() {
            let report = self.verify_table(id, Walk::Resync).await?;
            if let Some(reason) = &report.not_verified {
                tracing::warn!(table = %report.table, reason, "not resynced");
                continue;
            }
            let keys = report.resynced.unwrap_or(0);
            tracing::info!(table = %report.table, keys, "resync re-emitted the table");
            emitted_up_to = emitted_up_to.max(report.emitted_up_to);
            resynced.push((id, keys));
        }
        if emitted_up_to > 0 && !self.wait_for_watermark(emitted_up_to).await? {
            tracing::warn!(
                timeout_seconds = self.args.recheck_timeout_seconds,
                "the watermark did not pass the resync in time: the rounds may find its rows in flight"
            );
        }
        Ok(resynced)
    }

    /// One table: the chunk walk, then (verifying) the re-check of what differed and the repair,
    /// or (resyncing) the re-emission of every key of each chunk.
    async fn verify_table(&mut self, id: TableId, walk: Walk) -> Result<TableReport, VerifyError> {
        let table = self.plan.tables[id].clone();
        let mut report = TableReport {
            table: table.name.clone(),
            ..TableReport::default()
        };
        // NB: a resync needs only the keys, so lookups the verifier cannot compute do not stop it.
        if walk == Walk::Verify
            && let Some(reason) = unsupported_lookup(&self.plan, &table)
        {
            report.not_verified = Some(reason);
            return Ok(report);
        }
        let key_source = table.key_column().source.clone();
        let columns = self.source.describe(&table.source).await?;
        let Some(&(_, key_oid)) = columns.iter().find(|(name, _)| *name == key_source) else {
            report.not_verified = Some(format!("{} has no column {key_source}", table.source));
            return Ok(report);
        };
        let expression = match key_expression(&table, key_oid) {
            Ok(expression) => expression,
            Err(reason) => {
                report.not_verified = Some(reason);
                return Ok(report);
            }
        };
        let chunk = self.args.chunk_rows.max(1);
        let (key, bound) = clickhouse_key_range(&table);
        let mut after: Option<String> = None;
        let mut lower: Option<Value> = None;
        let mut suspects = Vec::new();
        loop {
            let condition = after
                .as_ref()
                .map(|last| format!("{expression} > {}", quote_literal(last)));
            let payloads = self
                .source
                .payloads(
                    &table.source,
                    condition.as_deref(),
                    &format!("ORDER BY {expression} LIMIT {chunk}"),
                )
                .await?;
            let observed_lsn = self.source.current_lsn().await?;
            let full = payloads.len() >= chunk;
            // The chunk's upper bound: its last key, converted as the sink converts keys; the last
            // chunk has none, so rows above Postgres's last key are compared too.
            let upper = match payloads.last().filter(|_| full) {
                Some(last) => {
                    let raw = last.get(&key_source);
                    let value = convert(raw, &table.key_column().ty, &key_source).map_err(|e| {
                        VerifyError::Source(format!("{}: key does not convert: {e}", table.source))
                    })?;
                    after = raw.map(payload_key_text);
                    Some(value)
                }
                None => None,
            };
            // NB: a resync needs the keys only, not the lookups (a query per lookup node).
            let expected = match walk {
                Walk::Verify => expected_rows(&mut self.source, &self.plan, id, &payloads).await?,
                Walk::Resync => expected_copies(&self.plan, id, &payloads).await?,
            };
            let mut range = vec!["1".to_owned()];
            if let Some(lower) = &lower {
                range.push(format!("{key} > {}", bound(lower)));
            }
            if let Some(upper) = &upper {
                range.push(format!("{key} <= {}", bound(upper)));
            }
            let mut actual = self.clickhouse_rows(&table, &range.join(" AND ")).await?;
            for refused in &expected.refused {
                if let Some(key) = &refused.key {
                    actual.remove(key);
                }
                report.skipped.push(SkippedKey {
                    key: refused.text.clone(),
                    reason: format!("the sink refuses the source row: {}", refused.reason),
                });
            }
            report.chunks += 1;
            report.rows_checked += expected.rows.len();
            if walk == Walk::Resync {
                let mut keys: Vec<Value> = expected.rows.keys().cloned().collect();
                keys.extend(
                    actual
                        .keys()
                        .filter(|k| !expected.rows.contains_key(*k))
                        .cloned(),
                );
                self.emit(&table, &keys, &mut report).await?;
                if upper.is_none() {
                    break;
                }
                lower = upper;
                continue;
            }
            for (key, _) in differing_keys(&table, &expected.rows, &actual) {
                suspects.push(Suspect {
                    expected: expected.rows.get(&key).cloned(),
                    key,
                    observed_lsn,
                });
            }
            if upper.is_none() {
                break;
            }
            lower = upper;
        }
        let confirmed = self.recheck(&table, id, suspects, &mut report).await?;
        if self.repairer.is_none() || confirmed.is_empty() {
            report.mismatches = mismatches(confirmed);
            return Ok(report);
        }
        let keys: Vec<Value> = confirmed.iter().map(|(k, _)| k.clone()).collect();
        let lsn = self.re_emit(&table, &keys).await?;
        tracing::info!(table = %table.name, keys = keys.len(), lsn, "re-emitted mismatching rows");
        let (expected, observed_lsn) = self.observe(id, &keys).await?;
        // The repair was acknowledged before `observed_lsn` was read, so once the watermark
        // passes it the sink has consumed the repair too (heartbeats come after it in every
        // partition).
        let suspects = keys
            .iter()
            .map(|key| Suspect {
                key: key.clone(),
                observed_lsn: observed_lsn.max(lsn),
                expected: expected.rows.get(key).cloned(),
            })
            .collect();
        // A repaired key is equal at this re-check: not a change in flight.
        let settled = report.settled;
        let remaining = self.recheck(&table, id, suspects, &mut report).await?;
        report.settled = settled;
        let still: HashSet<&Value> = remaining.iter().map(|(k, _)| k).collect();
        report.repaired = mismatches(
            confirmed
                .into_iter()
                .filter(|(k, _)| !still.contains(k))
                .collect(),
        );
        report.mismatches = mismatches(remaining);
        Ok(report)
    }

    /// Re-emits `keys` of `table` (`--resync`), counting them in `report`.
    async fn emit(
        &mut self,
        table: &TableModel,
        keys: &[Value],
        report: &mut TableReport,
    ) -> Result<(), VerifyError> {
        if keys.is_empty() {
            return Ok(());
        }
        let lsn = self.re_emit(table, keys).await?;
        *report.resynced.get_or_insert(0) += keys.len();
        report.emitted_up_to = report.emitted_up_to.max(lsn);
        Ok(())
    }

    /// Re-emits `keys` of `table` from their current Postgres rows (`--repair`, `--resync`); the
    /// position the envelopes carry.
    async fn re_emit(&mut self, table: &TableModel, keys: &[Value]) -> Result<u64, VerifyError> {
        let Some(repairer) = self.repairer.as_ref() else {
            return Err(VerifyError::Kafka(
                "re-emitting rows needs the pipeline's broker, and no producer was made".into(),
            ));
        };
        let primary_key = &self.plan.sources[&table.source].primary_key;
        repairer
            .repair(&mut self.source, &self.pipeline, primary_key, table, keys)
            .await
    }

    /// The re-check of `suspects`, differing keys of `table` first seen at their `observed_lsn`.
    ///
    /// The rule: wait until the pipeline's watermark (`cdcstar_watermark.commit_lsn`) is at or
    /// past every suspect's `observed_lsn`, the WAL position read just after its Postgres side was
    /// read; every transaction visible to that read committed below it, so by then ClickHouse has
    /// applied all of them. Then read the keys from ClickHouse, and after that from Postgres. A key
    /// that is equal now was a change in flight: dropped. A key that differs while its expected row
    /// (own columns and lookups) is the same as at the first observation is confirmed: nothing
    /// changed it in between, and ClickHouse was read before the second Postgres read, so
    /// ClickHouse should hold exactly that row. A key whose expected row changed meanwhile is
    /// observed again from this read, up to `--recheck-attempts` times, then reported as skipped;
    /// so is every pending key when the watermark does not pass within `--recheck-timeout-seconds`.
    async fn recheck(
        &mut self,
        table: &TableModel,
        id: TableId,
        suspects: Vec<Suspect>,
        report: &mut TableReport,
    ) -> Result<Vec<(Value, Difference)>, VerifyError> {
        let mut pending = suspects;
        let mut confirmed = Vec::new();
        for _ in 0..self.args.recheck_attempts.max(1) {
            let Some(target) = pending.iter().map(|s| s.observed_lsn).max() else {
                break;
            };
            if !self.wait_for_watermark(target).await? {
                let reason = format!(
                    "the watermark did not reach {} within {} s",
                    cdcstar_crds::Lsn(target),
                    self.args.recheck_timeout_seconds
                );
                report.skipped.extend(pending.drain(..).map(|s| SkippedKey {
                    key: key_text(&s.key),
                    reason: reason.clone(),
                }));
                break;
            }
            let keys: Vec<Value> = pending.iter().map(|s| s.key.clone()).collect();
            let actual = self
                .clickhouse_rows(table, &in_list(&table.key_column().name, keys.iter()))
                .await?;
            let (expected, observed_lsn) = self.observe(id, &keys).await?;
            let mut next = Vec::new();
            for suspect in pending.drain(..) {
                let now = expected.rows.get(&suspect.key);
                match difference(table, now, actual.get(&suspect.key)) {
                    None => report.settled += 1,
                    Some(difference) if now == suspect.expected.as_ref() => {
                        confirmed.push((suspect.key, difference));
                    }
                    Some(_) => next.push(Suspect {
                        key: suspect.key,
                        observed_lsn,
                        expected: now.cloned(),
                    }),
                }
            }
            pending = next;
        }
        report
            .skipped
            .extend(pending.into_iter().map(|s| SkippedKey {
                key: key_text(&s.key),
                reason: format!(
                    "its source rows changed at each of {} re-checks",
                    self.args.recheck_attempts.max(1)
                ),
            }));
        Ok(confirmed)
    }

    /// The expected rows of `keys` of table `id` now, and the WAL position read just after.
    async fn observe(
        &mut self,
        id: TableId,
        keys: &[Value],
    ) -> Result<(source::Expected, u64), VerifyError> {
        let table = &self.plan.tables[id];
        let literals: Vec<String> = keys.iter().map(key_literal).collect();
        let payloads = self
            .source
            .payloads(
                &table.source,
                Some(&format!(
                    "{} IN ({})",
                    cdcstar_crds::postgres::quote_ident(&table.key_column().source),
                    literals.join(", ")
                )),
                "",
            )
            .await?;
        let observed_lsn = self.source.current_lsn().await?;
        let expected = expected_rows(&mut self.source, &self.plan, id, &payloads).await?;
        Ok((expected, observed_lsn))
    }

    /// Live rows of `table` matching `filter`: copied columns then lookups, by key.
    async fn clickhouse_rows(&self, table: &TableModel, filter: &str) -> Result<Rows, VerifyError> {
        let width = table.width();
        let columns: Vec<String> = (0..width)
            .map(|i| quote_ident(column_name(table, i)))
            .collect();
        let sql = format!(
            "SELECT {} FROM {} FINAL WHERE `is_deleted` = 0 AND ({filter})",
            columns.join(", "),
            quote_ident(&table.name)
        );
        let types: Vec<_> = (0..width).map(|i| table.value_type(i).clone()).collect();
        let rows = self.store.select(&table.name, &sql, &types).await?;
        Ok(by_key(rows, table.key))
    }

    /// Waits until the watermark is at or past `lsn`; false when it is not within the timeout.
    async fn wait_for_watermark(&self, lsn: u64) -> Result<bool, VerifyError> {
        let started = Instant::now();
        loop {
            let reached = self
                .status
                .watermark()
                .await?
                .is_some_and(|w| w.commit_lsn >= lsn);
            if reached {
                return Ok(true);
            }
            if started.elapsed() >= self.args.recheck_timeout() {
                return Ok(false);
            }
            tokio::time::sleep(WATERMARK_POLL).await;
        }
    }
}

/// How a key range of `table` is written on the ClickHouse side so that it is Postgres's range (see
/// [`source::key_expression`]): the key expression, and a key value as a bound of it. ClickHouse
/// compares UUIDs by their two 64-bit halves, low half first, so a UUID key is compared as its text,
/// whose order is Postgres's byte order.
fn clickhouse_key_range(table: &TableModel) -> (String, fn(&Value) -> String) {
    let key = quote_ident(&table.key_column().name);
    if table.key_column().ty.base() == &cdcstar_crds::ColumnType::Uuid {
        (format!("toString({key})"), |v| {
            cdcstar_crds::clickhouse_ddl::quote_string(&key_text(v))
        })
    } else {
        (key, sql_literal)
    }
}

/// Confirmed differences as reported, in key order.
fn mismatches(found: Vec<(Value, Difference)>) -> Vec<Mismatch> {
    let mut mismatches: Vec<Mismatch> = found
        .into_iter()
        .map(|(key, difference)| Mismatch {
            key: key_text(&key),
            difference,
        })
        .collect();
    // Integers as text sort by length first.
    mismatches.sort_by(|a, b| a.key.len().cmp(&b.key.len()).then(a.key.cmp(&b.key)));
    mismatches
}

/// Runs `cdcstar-sink verify`: the report, or why it could not run.
pub async fn run(args: VerifyArgs) -> Result<Report, VerifyError> {
    Verifier::new(args).await?.run().await
}
