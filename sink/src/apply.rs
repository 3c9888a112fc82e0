//! Applying one batch of row changes to ClickHouse: dimensions first, then each fact in lookup order:
//! the propagation of the batch's changes to the fact's stored rows that look them up, inside
//! ClickHouse ([`propagate`]), then the fact's own changes, enriched from the rows now current (with
//! the re-check that closes the race between replicas). Propagating before the fact's own writes
//! keeps the batch's own rows out of the propagation, which would only read and compare them.
//!
//! A batch is applied as a whole or retried as a whole: every statement is idempotent under the
//! version rules ([`crate::apply::versioning`]), so a retry after a partial failure (or a replay after a
//! crash) converges to the same `FINAL` state; a propagation writes only the rows whose lookups still
//! differ, so a replay of a propagated change writes nothing.
//!
//! Cross-replica races, and why the re-checks close them (both only with `--lookup-recheck`, the
//! default; a single replica has no one to race):
//! - A fact's own change: replica A writes a fact row enriched from a dimension row it read before
//!   replica B wrote a new version of that row; B's propagation may have read the fact table before
//!   A's write landed. After every fact write, A reads the rows back and recomputes their lookups; if
//!   they differ (or its own write lost to a concurrent rewrite carrying an older source row), it
//!   writes again with a higher version. Either A's re-check sees B's dimension write, or B's
//!   dimension write came after A's fact write and B's propagation sees A's row.
//! - Two propagations of one fact row through different nodes (a customer moved by A, the order's
//!   status changed by B) can read the same version and write the same next version, the later
//!   insert winning with the other's lookup unchanged. With the re-check on, every propagation
//!   recomputes all the lookups of the rows it rewrites, and counts again after its write the rows
//!   that still differ, rewriting them: whichever write lands last, its writer's count comes after
//!   it and sees every referenced row written before.
//!
//! What the re-checks leave open: a propagation that read a fact row before a concurrent own change
//! of it, and wrote after that change's re-check, with the same version. The own change's version is
//! its change LSN unless propagations carried the row past it, which needs more propagations of the
//! row than WAL bytes between its two changes.
//!
//! Over 400 lines: write order, own changes, propagation and re-check share their reads and
//! chunking, and the race argument above needs the code beside it.

pub mod enrich;
pub mod propagate;
pub mod versioning;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cdcstar_crds::clickhouse_ddl::quote_ident;
use cdcstar_crds::star::{IS_DELETED_COLUMN, LSN_COLUMN, SOURCE_LSN_COLUMN};
use cdcstar_crds::star_model::{StarModel, TableId, TableModel};

use crate::apply::enrich::{enrich, key_form};
use crate::apply::propagate::Propagation;
use crate::apply::versioning::{fold_fact, fold_plain, propagated};
use crate::route::RowChange;
use crate::route::value::{Value, default_value};
use crate::store::{Row, Store, StoreError, in_list};

/// Most fact rows of a batch's own changes read, enriched and written at a time: each chunk holds the
/// stored rows it read and their rewrites (propagation holds no fact row in the sink). Measured with
/// `make bench-sink` (300 000 events, 20 000-event batches, re-check off / on): 2 000 rows 30.5k
/// events/s at 73 MiB; 10 000 rows 36.6k / 19.3k events/s at 74 / 89 MiB; 20 000 rows 42.5k / 20.5k
/// events/s at 83 / 95 MiB.
const FACT_CHUNK_ROWS: usize = 10_000;

/// Rows a truncate deletes per pass (each pass is applied like a batch of deletes).
const TRUNCATE_CHUNK_ROWS: usize = 10_000;

/// Rounds of re-checking before leaving a still-moving row to the replica moving it.
const RECHECK_ROUNDS: usize = 3;

/// What a batch did, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Rows inserted per table (all reasons).
    pub rows_written: Vec<usize>,
    /// Fact rows rewritten because a referenced row changed.
    pub propagated: usize,
    /// Fact rows rewritten by the re-check.
    pub rechecked: usize,
    /// Fact rows written while a row they reference was not there (yet): see [`enrich`].
    pub unresolved: usize,
    /// RowBinary bytes sent.
    pub bytes: usize,
}

impl ApplyReport {
    /// An empty report of a star schema of `tables` tables.
    fn for_tables(tables: usize) -> Self {
        Self {
            rows_written: vec![0; tables],
            ..Self::default()
        }
    }

    /// Adds what another part of the same batch did.
    pub fn add(&mut self, other: ApplyReport) {
        if self.rows_written.len() < other.rows_written.len() {
            self.rows_written.resize(other.rows_written.len(), 0);
        }
        for (total, rows) in self.rows_written.iter_mut().zip(other.rows_written) {
            *total += rows;
        }
        self.propagated += other.propagated;
        self.unresolved += other.unresolved;
        self.rechecked += other.rechecked;
        self.bytes += other.bytes;
    }
}

/// Applies batches of row changes.
#[derive(Debug, Clone)]
pub struct Applier {
    store: Store,
    plan: Arc<StarModel>,
    recheck: bool,
}

impl Applier {
    /// An applier writing through `store`; `recheck` enables the post-write lookup check needed when
    /// several replicas share the topics.
    pub fn new(store: Store, plan: Arc<StarModel>, recheck: bool) -> Self {
        Applier {
            store,
            plan,
            recheck,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The plan.
    pub fn plan(&self) -> &StarModel {
        &self.plan
    }

    /// Applies `changes` (in consumption order). A `TRUNCATE` splits them: what comes before it is
    /// applied, then the truncate, then the rest (consecutive batches, which the version rules make
    /// equivalent to one).
    pub async fn apply(&self, changes: &[RowChange]) -> Result<ApplyReport, StoreError> {
        let mut report = ApplyReport::default();
        let mut rest = changes;
        while let Some(at) = rest.iter().position(|c| c.truncates_table) {
            report.add(self.apply_rows(&rest[..at]).await?);
            report.add(self.truncate(&rest[at]).await?);
            rest = &rest[at + 1..];
        }
        report.add(self.apply_rows(rest).await?);
        Ok(report)
    }

    /// A `TRUNCATE` at version `v`: a delete at `v` of every live row of the table written below
    /// `v` (its `lsn`, or a fact's `source_lsn`), through the usual path, so facts looking up a
    /// truncated table are rewritten with default lookups. Rows written at or above `v` (changes
    /// after the truncate, consumed earlier from another partition) stay.
    async fn truncate(&self, truncate: &RowChange) -> Result<ApplyReport, StoreError> {
        let table = &self.plan.tables[truncate.table];
        let version_column = if table.is_fact() {
            SOURCE_LSN_COLUMN
        } else {
            LSN_COLUMN
        };
        let sql = format!(
            "SELECT {} FROM {} FINAL WHERE {} = 0 AND {} < {}",
            quote_ident(&table.key_column().name),
            quote_ident(&table.name),
            quote_ident(IS_DELETED_COLUMN),
            quote_ident(version_column),
            truncate.version
        );
        let keys = self
            .store
            .select(&table.name, &sql, &[table.key_column().ty.clone()])
            .await?;
        tracing::info!(table = %table.name, rows = keys.len(), version = truncate.version,
            "TRUNCATE deletes the table's rows");
        let mut report = ApplyReport::default();
        for chunk in keys.chunks(TRUNCATE_CHUNK_ROWS) {
            let deletes: Vec<RowChange> = chunk
                .iter()
                .map(|record| {
                    let mut values: Vec<Value> =
                        table.columns.iter().map(|c| default_value(&c.ty)).collect();
                    values[table.key] = record[0].clone();
                    RowChange {
                        table: truncate.table,
                        key: record[0].clone(),
                        values,
                        unchanged: Vec::new(),
                        deleted: true,
                        truncates_table: false,
                        version: truncate.version,
                    }
                })
                .collect();
            report.add(self.apply_rows(&deletes).await?);
        }
        Ok(report)
    }

    /// Applies row changes (no truncate among them), in consumption order.
    async fn apply_rows(&self, changes: &[RowChange]) -> Result<ApplyReport, StoreError> {
        let plan = &*self.plan;
        let mut by_table: Vec<Vec<&RowChange>> = vec![Vec::new(); plan.tables.len()];
        let mut changed_keys: Vec<HashSet<Value>> = vec![HashSet::new(); plan.tables.len()];
        for change in changes {
            by_table[change.table].push(change);
            changed_keys[change.table].insert(key_form(&change.key));
        }
        let mut report = ApplyReport::for_tables(plan.tables.len());
        // Dimensions reference nothing, so theirs are written concurrently.
        let dimensions = plan
            .dimension_ids()
            .filter(|&id| !by_table[id].is_empty())
            .map(|id| {
                let changes = &by_table[id];
                async move {
                    let mut report = ApplyReport::for_tables(plan.tables.len());
                    self.apply_plain(id, changes, &mut report).await?;
                    Ok::<_, StoreError>(report)
                }
            });
        for dimension in futures::future::try_join_all(dimensions).await? {
            report.add(dimension);
        }
        for &id in &plan.fact_order {
            // Every table the fact looks up is written by now (dimensions, then facts in lookup
            // order), and its own rows of this batch are not yet: the propagation reads only the
            // rows written before the batch, and the batch's own rows are enriched from the
            // current referenced rows instead of being read again and compared.
            self.propagate(id, &changed_keys, &mut report).await?;
            self.apply_fact(id, &by_table[id], &mut report).await?;
        }
        Ok(report)
    }

    async fn apply_plain(
        &self,
        id: TableId,
        changes: &[&RowChange],
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let table = &self.plan.tables[id];
        let groups = group_by_key(changes);
        let toast_keys: Vec<&Value> = groups
            .iter()
            .filter(|(_, changes)| changes.iter().any(|c| !c.unchanged.is_empty()))
            .map(|(key, _)| key)
            .collect();
        let stored = if toast_keys.is_empty() {
            HashMap::new()
        } else {
            let filter = in_list(&table.key_column().name, toast_keys);
            self.read_by_key(table, &filter).await?
        };
        let rows: Vec<Row> = groups
            .iter()
            .filter_map(|(key, changes)| fold_plain(table, stored.get(key), changes))
            .collect();
        self.write(id, &rows, report).await
    }

    /// Writes the fact's own changes, a chunk at a time (each chunk reads, enriches and writes its
    /// rows).
    async fn apply_fact(
        &self,
        id: TableId,
        changes: &[&RowChange],
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        for chunk in group_by_key(changes).chunks(FACT_CHUNK_ROWS) {
            self.apply_fact_chunk(id, chunk, report).await?;
        }
        Ok(())
    }

    /// Writes the changes of `groups` (distinct keys), enriched from the current referenced rows.
    async fn apply_fact_chunk(
        &self,
        id: TableId,
        groups: &[(Value, Vec<&RowChange>)],
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let plan = &*self.plan;
        let table = &plan.tables[id];
        let filter = in_list(&table.key_column().name, groups.iter().map(|(k, _)| k));
        let mut stored = self.read_by_key(table, &filter).await?;
        // A stale replay writes nothing: if what it looks up changed, the propagation of this
        // batch or of the batch that changed it rewrites the row.
        let mut rows: Vec<Row> = groups
            .iter()
            .filter_map(|(key, changes)| fold_fact(table, stored.remove(key).as_ref(), changes))
            .collect();
        drop(stored);
        report.unresolved += enrich(&self.store, plan, table, &mut rows).await?;
        self.write(id, &rows, report).await?;
        if self.recheck && !table.lookups.is_empty() && !rows.is_empty() {
            self.recheck(id, rows, report).await?;
        }
        Ok(())
    }

    /// Rewrites, inside ClickHouse, the stored rows of fact `id` that look up a row the batch
    /// changed: one statement for all its changed lookup nodes.
    async fn propagate(
        &self,
        id: TableId,
        changed_keys: &[HashSet<Value>],
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let fact = &self.plan.tables[id];
        let changes: Vec<(usize, &HashSet<Value>)> = fact
            .nodes
            .iter()
            .enumerate()
            .map(|(node, lookup)| (node, &changed_keys[lookup.table]))
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
        if changes.is_empty() {
            return Ok(());
        }
        let propagation = Propagation {
            plan: &self.plan,
            fact,
            changes: &changes,
            all_lookups: self.recheck,
        };
        self.propagate_through(id, propagation, report).await
    }

    /// Rewrites the rows a propagation changes, in one statement that reports how many it wrote.
    /// With several replicas the rewrite is repeated until it writes nothing, so rows another
    /// replica wrote concurrently with stale lookups are caught (see the module docs).
    async fn propagate_through(
        &self,
        id: TableId,
        propagation: Propagation<'_>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let table = &self.plan.tables[id].name;
        let sql = propagation.insert_sql();
        for round in 0..=RECHECK_ROUNDS {
            tracing::debug!(table, round, "propagation rewrites fact rows");
            let rows = self.store.insert_select(table, &sql).await?;
            if rows == 0 {
                break;
            }
            report.rows_written[id] += rows;
            if round == 0 {
                report.propagated += rows;
            } else {
                tracing::info!(
                    table,
                    rows,
                    round,
                    "re-check rewrote fact rows propagated concurrently"
                );
                report.rechecked += rows;
            }
            if !self.recheck {
                break;
            }
        }
        Ok(())
    }

    /// Reads the rows just written back and rewrites those whose lookups changed meanwhile or whose
    /// write lost to a concurrent rewrite of an older source row (see the module docs).
    async fn recheck(
        &self,
        id: TableId,
        mut written: Vec<Row>,
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let table = &self.plan.tables[id];
        for round in 0..RECHECK_ROUNDS {
            let filter = in_list(
                &table.key_column().name,
                written.iter().map(|r| &r.values[table.key]),
            );
            let mut current = self.read_by_key(table, &filter).await?;
            let mut candidates = Vec::new();
            let mut previous = Vec::new();
            for mine in &written {
                // NB: written rows have distinct keys; each row read back is taken once.
                let Some(now) = current.remove(&key_form(&mine.values[table.key])) else {
                    continue;
                };
                if now.source_lsn < mine.source_lsn {
                    candidates.push(Row {
                        lsn: now.lsn + 1,
                        ..mine.clone()
                    });
                    previous.push(None);
                } else if !now.deleted {
                    previous.push(Some(lookups_of(table, &now)));
                    candidates.push(propagated(now));
                }
            }
            enrich(&self.store, &self.plan, table, &mut candidates).await?;
            let fixes: Vec<Row> = candidates
                .into_iter()
                .zip(previous)
                .filter(|(row, previous)| match previous {
                    Some(previous) => *previous != lookups_of(table, row),
                    None => true,
                })
                .map(|(row, _)| row)
                .collect();
            if fixes.is_empty() {
                return Ok(());
            }
            tracing::info!(table = %table.name, rows = fixes.len(), round,
                "re-check rewrites fact rows changed concurrently");
            report.rechecked += fixes.len();
            self.write(id, &fixes, report).await?;
            written = fixes;
        }
        Ok(())
    }

    async fn read_by_key(
        &self,
        table: &TableModel,
        filter: &str,
    ) -> Result<HashMap<Value, Row>, StoreError> {
        Ok(self
            .store
            .read_rows(table, filter)
            .await?
            .into_iter()
            .map(|row| (key_form(&row.values[table.key]), row))
            .collect())
    }

    async fn write(
        &self,
        id: TableId,
        rows: &[Row],
        report: &mut ApplyReport,
    ) -> Result<(), StoreError> {
        let bytes = self.store.insert(&self.plan.tables[id], rows).await?;
        report.rows_written[id] += rows.len();
        report.bytes += bytes;
        Ok(())
    }
}

fn lookups_of(table: &TableModel, row: &Row) -> Vec<Value> {
    row.values[table.columns.len()..].to_vec()
}

/// Changes grouped by key, keys in first-seen order, changes in consumption order.
fn group_by_key<'a>(changes: &[&'a RowChange]) -> Vec<(Value, Vec<&'a RowChange>)> {
    let mut index: HashMap<Value, usize> = HashMap::with_capacity(changes.len());
    let mut groups: Vec<(Value, Vec<&'a RowChange>)> = Vec::new();
    for change in changes {
        let key = key_form(&change.key);
        match index.get(&key) {
            Some(&i) => groups[i].1.push(change),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![change]));
            }
        }
    }
    groups
}
