//! The initial snapshot: existing rows emitted as `read` events, table by table, in primary-key
//! batches (keyset pagination), resumable after a crash.
//!
//! Progress lives in the source database, in `cdcstar.snapshot_progress` (one row per slot and
//! table: `pending`, `running` with the last key whose batch the broker acknowledged, or `done`).
//! A batch's progress is saved only after every one of its events was acknowledged, so a crash
//! replays at most the batches in flight.
//!
//! Consistency: when the capture creates the slot it exports the slot's snapshot and reads every
//! table through it, so snapshot rows and streamed changes meet exactly at the slot's consistent
//! point. A table resumed after a crash, or added to the pipeline later, is read through a fresh
//! MVCC snapshot taken after the table is in the publication; rows it returns may also arrive as
//! streamed changes, and the sink keeps the higher version (a streamed change's LSN beats a `read`
//! row, which has none). See docs/capture.md for why this neither loses nor double-applies.
//!
//! Over 400 lines: keyset pagination, resumable progress and the hand-over to streaming share their
//! state machine; split, the invariants would be in two places.

use std::collections::VecDeque;
use std::sync::Arc;

use cdcstar_crds::postgres::{SNAPSHOT_PROGRESS_DDL, SNAPSHOT_PROGRESS_QUERY, where_all};
use tokio_postgres::{Client, SimpleQueryMessage, SimpleQueryRow};
use tokio_util::sync::CancellationToken;

use crate::metrics::{CaptureMetrics, TableLabel, TableOperation};
use crate::pgoutput::{Relation, RelationColumn};
use crate::producer::{BatchAcks, EventProducer};
use crate::read_event::ReadEncoder;
use crate::source::{quote_ident, quote_literal};
use crate::stream::Routes;

/// Errors of the snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A statement failed.
    #[error("snapshot failed to {action}: {source}")]
    Sql {
        /// What was being done.
        action: String,
        source: tokio_postgres::Error,
    },
    /// A table cannot be snapshotted.
    #[error("cannot snapshot {table}: {reason}")]
    Table { table: String, reason: String },
    /// The producer refused or the broker did not acknowledge a row.
    #[error("snapshot of {table} could not produce: {reason}")]
    Produce { table: String, reason: String },
}

/// Batches whose rows may be awaiting the broker's acknowledgement at once.
const BATCHES_IN_FLIGHT: usize = 4;

fn sql(action: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SnapshotError {
    let action = action.into();
    move |source| SnapshotError::Sql { action, source }
}

/// State of a table's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// Not started.
    Pending,
    /// Some batches done.
    Running,
    /// Every row emitted.
    Done,
}

impl TableState {
    fn as_str(self) -> &'static str {
        match self {
            TableState::Pending => "pending",
            TableState::Running => "running",
            TableState::Done => "done",
        }
    }

    fn gauge(self) -> i64 {
        match self {
            TableState::Pending => 0,
            TableState::Running => 1,
            TableState::Done => 2,
        }
    }
}

/// A table to snapshot and where to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableTask {
    pub table: String,
    /// Text of the last primary key already emitted, `None` to start at the beginning.
    pub resume_after: Option<String>,
    /// Rows already emitted.
    pub rows: i64,
}

/// The progress table of the snapshot, for one slot.
#[derive(Debug, Clone)]
pub struct ProgressStore {
    slot: String,
}

impl ProgressStore {
    /// Progress of `slot`'s snapshot.
    pub fn new(slot: impl Into<String>) -> Self {
        Self { slot: slot.into() }
    }

    /// Creates `cdcstar.snapshot_progress` if missing.
    pub async fn ensure_table(&self, client: &Client) -> Result<(), SnapshotError> {
        client
            .batch_execute(SNAPSHOT_PROGRESS_DDL)
            .await
            .map_err(sql("create cdcstar.snapshot_progress"))
    }

    /// Forgets the progress of a previous slot of the same name (the slot was just created).
    pub async fn reset(&self, client: &Client) -> Result<(), SnapshotError> {
        client
            .execute(
                "DELETE FROM cdcstar.snapshot_progress WHERE slot = $1",
                &[&self.slot],
            )
            .await
            .map_err(sql("reset snapshot progress"))?;
        Ok(())
    }

    /// The tables of `tables` whose snapshot is not done, with where to resume each; records the
    /// new ones as pending.
    pub async fn plan(
        &self,
        client: &Client,
        tables: &[String],
    ) -> Result<Vec<TableTask>, SnapshotError> {
        let rows = client
            .query(SNAPSHOT_PROGRESS_QUERY, &[&self.slot])
            .await
            .map_err(sql("read snapshot progress"))?;
        let mut tasks = Vec::new();
        for table in tables {
            let known = rows.iter().find(|row| row.get::<_, String>(0) == *table);
            match known {
                Some(row) if row.get::<_, String>(1) == TableState::Done.as_str() => {}
                Some(row) => tasks.push(TableTask {
                    table: table.clone(),
                    resume_after: row.get(2),
                    rows: row.get(3),
                }),
                None => {
                    self.save(client, table, TableState::Pending, None, 0)
                        .await?;
                    tasks.push(TableTask {
                        table: table.clone(),
                        resume_after: None,
                        rows: 0,
                    });
                }
            }
        }
        Ok(tasks)
    }

    async fn save(
        &self,
        client: &Client,
        table: &str,
        state: TableState,
        last_key: Option<&str>,
        rows: i64,
    ) -> Result<(), SnapshotError> {
        client
            .execute(
                "INSERT INTO cdcstar.snapshot_progress (slot, table_name, state, last_key, rows) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (slot, table_name) DO UPDATE SET state = EXCLUDED.state, \
                   last_key = EXCLUDED.last_key, rows = EXCLUDED.rows, updated_at = now()",
                &[&self.slot, &table, &state.as_str(), &last_key, &rows],
            )
            .await
            .map_err(sql(format!("save snapshot progress of {table}")))?;
        Ok(())
    }
}

/// Which MVCC snapshot the rows are read through.
#[derive(Debug)]
pub enum ReadSnapshot {
    /// The slot's exported snapshot, already imported by an open transaction of this session.
    Exported(Client),
    /// A fresh repeatable-read transaction per table.
    Fresh(Client),
}

/// Runs the snapshot of `tasks`, one table after the other.
#[derive(Debug)]
pub struct Snapshotter {
    /// Where rows are read.
    pub reader: ReadSnapshot,
    /// Where progress is written (a separate session: the reader's transaction is read-only).
    pub progress_client: Client,
    pub progress: ProgressStore,
    /// Topics and keys.
    pub routes: Arc<Routes>,
    pub producer: Arc<EventProducer>,
    pub metrics: Arc<CaptureMetrics>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Stops the snapshot between batches (progress is saved; the next start resumes).
    pub shutdown: CancellationToken,
}

struct Batch {
    rows: Vec<SimpleQueryRow>,
    last_key: Option<String>,
}

impl Snapshotter {
    /// Snapshots every task in order.
    pub async fn run(self, tasks: Vec<TableTask>) -> Result<(), SnapshotError> {
        for task in &tasks {
            self.metrics
                .snapshot_state
                .get_or_create(&label(&task.table))
                .set(TableState::Pending.gauge());
        }
        let (client, exported) = match &self.reader {
            ReadSnapshot::Exported(client) => (client, true),
            ReadSnapshot::Fresh(client) => (client, false),
        };
        for task in tasks {
            if !exported {
                client
                    .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await
                    .map_err(sql("begin the snapshot transaction"))?;
            }
            let finished = self.table(client, task).await?;
            if !exported {
                client
                    .batch_execute("COMMIT")
                    .await
                    .map_err(sql("end the snapshot transaction"))?;
            }
            if !finished {
                return Ok(());
            }
        }
        if exported {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(sql("end the exported snapshot transaction"))?;
        }
        Ok(())
    }

    /// Snapshots one table; `false` when interrupted by shutdown.
    async fn table(&self, client: &Client, task: TableTask) -> Result<bool, SnapshotError> {
        let table = task.table.clone();
        let route = self
            .routes
            .get(&self.routes.schema, &table)
            .ok_or_else(|| SnapshotError::Table {
                table: table.clone(),
                reason: "not a captured table".into(),
            })?
            .clone();
        let mut relation = describe_table(client, &self.routes.schema, &table).await?;
        // An excluded column is not even read.
        relation
            .columns
            .retain(|c| !route.columns.excludes(&c.name));
        let key_index = relation
            .columns
            .iter()
            .position(|c| c.name == route.primary_key)
            .ok_or_else(|| SnapshotError::Table {
                table: table.clone(),
                reason: format!("primary key column {} does not exist", route.primary_key),
            })?;
        tracing::info!(table, resume_after = ?task.resume_after, "snapshot of table started");
        let state_gauge = self
            .metrics
            .snapshot_state
            .get_or_create(&label(&table))
            .clone();
        state_gauge.set(TableState::Running.gauge());
        let rows_counter = self
            .metrics
            .snapshot_rows
            .get_or_create(&label(&table))
            .clone();
        let events = self
            .metrics
            .events
            .get_or_create(&TableOperation {
                table: table.clone(),
                operation: "read".into(),
            })
            .clone();

        let mut total = task.rows;
        let mut after = task.resume_after.clone();
        let filter = route.row_filter.as_deref();
        let mut next = Some(
            self.fetch(client, &relation, key_index, filter, after.as_deref())
                .await?,
        );
        // Batches sent and not yet saved as progress, oldest first: progress is saved in key order,
        // each batch once the broker acknowledged all of it.
        let mut in_flight: VecDeque<(Arc<BatchAcks>, usize, Option<String>)> = VecDeque::new();
        let encoder = ReadEncoder::new(&relation, &route.primary_key, &route.columns);
        let mut payload = Vec::with_capacity(512);
        let mut warnings = Vec::new();
        while let Some(batch) = next.take() {
            if batch.rows.is_empty() {
                break;
            }
            if self.shutdown.is_cancelled() {
                tracing::info!(
                    table,
                    rows = total,
                    "snapshot interrupted by shutdown, will resume"
                );
                for (acks, _, _) in &in_flight {
                    // Let what was sent settle; its progress is replayed on resume at worst.
                    let _ = acks.wait().await;
                }
                return Ok(false);
            }
            let acks = Arc::new(BatchAcks::default());
            let full = batch.rows.len() == self.batch_size;
            // The next batch's query runs on the server while this one is encoded and produced.
            let fetch_next = async {
                match &batch.last_key {
                    Some(last_key) if full => self
                        .fetch(client, &relation, key_index, filter, Some(last_key))
                        .await
                        .map(Some),
                    _ => Ok(None),
                }
            };
            let produce = async {
                for row in &batch.rows {
                    let key = encoder.encode(|i| row.get(i), &mut payload, &mut warnings);
                    let key = key.map(|range| &payload[range]);
                    self.producer
                        .send_snapshot(&route.topic, key, &payload, &acks)
                        .await
                        .map_err(|err| SnapshotError::Produce {
                            table: table.clone(),
                            reason: err.to_string(),
                        })?;
                }
                Ok::<_, SnapshotError>(())
            };
            let (fetched, produced) = futures::join!(fetch_next, produce);
            produced?;
            next = fetched?;
            for warning in warnings.drain(..) {
                tracing::warn!(column = %warning.column, reason = %warning.reason, "snapshot value kept as text");
                self.metrics.conversion_warnings.inc();
            }
            events.inc_by(batch.rows.len() as u64);
            in_flight.push_back((acks, batch.rows.len(), batch.last_key));
            let last_batch = next.as_ref().is_none_or(|batch| batch.rows.is_empty());
            while in_flight.len() > BATCHES_IN_FLIGHT || (last_batch && !in_flight.is_empty()) {
                let (acks, rows, last_key) = in_flight.pop_front().expect("not empty");
                acks.wait().await.map_err(|reason| SnapshotError::Produce {
                    table: table.clone(),
                    reason,
                })?;
                total += rows as i64;
                after = last_key;
                rows_counter.inc_by(rows as u64);
                self.progress
                    .save(
                        &self.progress_client,
                        &table,
                        TableState::Running,
                        after.as_deref(),
                        total,
                    )
                    .await?;
            }
        }
        self.progress
            .save(
                &self.progress_client,
                &table,
                TableState::Done,
                after.as_deref(),
                total,
            )
            .await?;
        state_gauge.set(TableState::Done.gauge());
        tracing::info!(table, rows = total, "snapshot of table done");
        Ok(true)
    }

    /// The next batch of rows: those matching `row_filter` (the publication's own filter) with a
    /// key after `after`.
    async fn fetch(
        &self,
        client: &Client,
        relation: &Relation,
        key_index: usize,
        row_filter: Option<&str>,
        after: Option<&str>,
    ) -> Result<Batch, SnapshotError> {
        let columns: Vec<String> = relation
            .columns
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let key = &columns[key_index];
        let filter = where_all(
            row_filter
                .map(|filter| format!("({filter})"))
                .into_iter()
                .chain(after.map(|last| format!("{key} > {}", quote_literal(last)))),
        );
        let query = format!(
            "SELECT {} FROM {}.{} {filter} ORDER BY {key} LIMIT {}",
            columns.join(", "),
            quote_ident(&relation.namespace),
            quote_ident(&relation.name),
            self.batch_size
        );
        let messages = client
            .simple_query(&query)
            .await
            .map_err(sql(format!("read a batch of {}", relation.name)))?;
        let rows: Vec<SimpleQueryRow> = messages
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        let last_key = rows
            .last()
            .and_then(|row| row.get(key_index))
            .map(str::to_owned);
        Ok(Batch { rows, last_key })
    }
}

/// The table's columns as pgoutput would describe them (no dropped or generated columns).
async fn describe_table(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Relation, SnapshotError> {
    let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, c.oid::int8 \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attgenerated = '' \
             ORDER BY a.attnum",
            &[&qualified],
        )
        .await
        .map_err(sql(format!("describe {qualified}")))?;
    if rows.is_empty() {
        return Err(SnapshotError::Table {
            table: table.to_owned(),
            reason: "no columns".into(),
        });
    }
    let id: i64 = rows[0].get(3);
    Ok(Relation {
        id: id as u32,
        namespace: schema.to_owned(),
        name: table.to_owned(),
        replica_identity: b'd',
        columns: rows
            .iter()
            .map(|row| RelationColumn {
                is_key: false,
                name: row.get(0),
                type_oid: row.get::<_, i64>(1) as u32,
                type_modifier: row.get(2),
            })
            .collect(),
    })
}

fn label(table: &str) -> TableLabel {
    TableLabel {
        table: table.to_owned(),
    }
}

/// Opens a repeatable-read transaction on `client` that reads through exported snapshot `name`.
pub async fn import_snapshot(client: &Client, name: &str) -> Result<(), SnapshotError> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(name)
        ))
        .await
        .map_err(sql(format!("import exported snapshot {name}")))
}
