//! What ClickHouse should hold, computed from Postgres: a star table's rows from its source rows, each
//! converted exactly as the sink converts an envelope payload, and a fact's lookups from the
//! referenced Postgres rows along the model's lookup tree.
//!
//! Source rows are read as the capture reads them (its session settings, values in text form turned
//! into payload JSON by its own conversion, [`cdcstar_source::value::text_to_json`]), wrapped in an
//! `update` envelope and passed through the sink's own [`crate::route::route`], so each copied
//! column gets the value the sink would write for that row (types, ranges, `onUnrepresentable`). A
//! lookup takes the referenced star table's converted column, as `enrich` takes it from ClickHouse;
//! a referenced row that is missing (or that the sink would dead-letter) gives the lookup type's
//! default, as it does in the sink.
//!
//! The capture's view of each table applies too (docs/crd.md, `excludeColumns`, `mask`,
//! `rowFilter`): an excluded column is never read, a masked value is masked as the capture masks it
//! (with the same salt), and a row outside the table's row filter counts as absent. So the verifier
//! compares what the capture could have sent, and a repair never sends what the capture would not.
//!
//! Over 400 lines: reading a table as the capture would and computing its lookups from Postgres
//! follow the same walk of the model, and split apart they would share every type here.

use std::collections::{HashMap, HashSet};

use cdcstar_crds::CdcPipeline;
use cdcstar_crds::column_type::ColumnType;
use cdcstar_crds::postgres::{quote_ident, quote_literal, row_filter_sql, where_all};
use cdcstar_crds::star_model::{StarModel, TableId, TableModel};
use cdcstar_crds::{Envelope, Lsn, Operation, envelope::Metadata};
use cdcstar_source::address::DatabaseAddress;
use cdcstar_source::mask::{ColumnRule, ColumnRules, MaskSalt};
use cdcstar_source::value::text_to_json;
use serde_json::{Map, Value as Json};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::apply::enrich::key_form;
use crate::route::route;
use crate::route::value::{Value, convert, default_value};
use crate::verify::VerifyError;
use crate::verify::compare::Rows;

/// `int2`, `int4`, `int8`: keys Postgres orders as ClickHouse's integers do.
const INTEGER_OIDS: [u32; 3] = [21, 23, 20];

/// A source row as the capture would carry it in an envelope.
pub type Payload = Map<String, Json>;

/// The expected rows of some keys of one star table.
#[derive(Debug, Default)]
pub struct Expected {
    /// Rows the sink would write, by key (copied columns then lookups).
    pub rows: Rows,
    /// Source rows the sink would refuse (dead-letter).
    pub refused: Vec<Refused>,
}

/// A source row the sink would refuse (send to the dead-letter topic) instead of writing it.
#[derive(Debug, Clone)]
pub struct Refused {
    /// Its key as the star table holds it, when the key itself converts.
    pub key: Option<Value>,
    /// Its key as the payload carries it.
    pub text: String,
    /// Why the sink refuses it.
    pub reason: String,
}

/// What the capture sends of one source table: its column rules and its row filter.
#[derive(Debug, Clone, Default)]
struct CaptureView {
    columns: ColumnRules,
    /// The `rowFilter` as a SQL condition.
    row_filter: Option<String>,
}

/// A session on the source database.
#[derive(Debug)]
pub struct Source {
    client: Client,
    schema: String,
    /// What the capture sends, per declared source table.
    views: HashMap<String, CaptureView>,
    /// Column names and type OIDs per source table, in table order, without excluded columns.
    columns: HashMap<String, Vec<(String, u32)>>,
}

impl Source {
    /// Connects to `url` with the capture's session settings, to read the tables of `pipeline` as
    /// its capture sends them; `salt` is the capture's mask salt (required when a column is hashed).
    pub async fn connect(
        url: &str,
        pipeline: &CdcPipeline,
        salt: Option<&MaskSalt>,
    ) -> Result<Self, VerifyError> {
        let mut views = HashMap::new();
        for table in &pipeline.spec.source.tables {
            let columns = ColumnRules::for_table(table, salt)
                .map_err(|e| VerifyError::Source(e.to_string()))?;
            let row_filter = row_filter_sql(table);
            views.insert(
                table.name.clone(),
                CaptureView {
                    columns,
                    row_filter,
                },
            );
        }
        let address =
            DatabaseAddress::parse(url).map_err(|e| VerifyError::Source(e.to_string()))?;
        let client = address
            .connect()
            .await
            .map_err(|e| VerifyError::Source(e.to_string()))?;
        Ok(Source {
            client,
            schema: pipeline.spec.source.schema.clone(),
            views,
            columns: HashMap::new(),
        })
    }

    fn view(&self, table: &str) -> CaptureView {
        self.views.get(table).cloned().unwrap_or_default()
    }

    fn sql_error(what: String) -> impl FnOnce(tokio_postgres::Error) -> VerifyError {
        move |e| VerifyError::Source(format!("failed to {what}: {e}"))
    }

    /// Runs `sql` (one statement) in text mode.
    pub async fn text_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, VerifyError> {
        let messages = self
            .client
            .simple_query(sql)
            .await
            .map_err(Self::sql_error(format!("run {sql}")))?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    /// The current WAL insert position: every transaction that committed before this call has its
    /// commit record below it, and every change written after it is above it.
    pub async fn current_lsn(&self) -> Result<u64, VerifyError> {
        let rows = self
            .text_rows("SELECT pg_current_wal_insert_lsn()::text")
            .await?;
        let text = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .unwrap_or_default();
        text.parse::<Lsn>()
            .map(|l| l.0)
            .map_err(|e| VerifyError::Source(e.to_string()))
    }

    /// Column names and type OIDs of source table `table` (what pgoutput would describe).
    pub async fn describe(&mut self, table: &str) -> Result<Vec<(String, u32)>, VerifyError> {
        if let Some(columns) = self.columns.get(table) {
            return Ok(columns.clone());
        }
        let qualified = self.qualified(table);
        let rows = self
            .client
            .query(
                "SELECT a.attname::text, a.atttypid::int8 FROM pg_attribute a \
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
                   AND a.attgenerated = '' ORDER BY a.attnum",
                &[&qualified],
            )
            .await
            .map_err(Self::sql_error(format!("describe {qualified}")))?;
        let view = self.view(table);
        let columns: Vec<(String, u32)> = rows
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u32))
            .filter(|(name, _)| !view.columns.excludes(name))
            .collect();
        if columns.is_empty() {
            return Err(VerifyError::Source(format!("{qualified} has no columns")));
        }
        self.columns.insert(table.to_owned(), columns.clone());
        Ok(columns)
    }

    /// `"schema"."table"`.
    pub fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    /// Payloads, as the capture would send them, of the rows of `table` that match `condition` and
    /// the table's row filter, then `tail` (`ORDER BY ... LIMIT ...`, `FOR SHARE`).
    pub async fn payloads(
        &mut self,
        table: &str,
        condition: Option<&str>,
        tail: &str,
    ) -> Result<Vec<Payload>, VerifyError> {
        let columns = self.describe(table).await?;
        let view = self.view(table);
        let list: Vec<String> = columns.iter().map(|(n, _)| quote_ident(n)).collect();
        let filter = where_all(
            [view.row_filter.as_deref(), condition]
                .into_iter()
                .flatten()
                .map(|c| format!("({c})")),
        );
        let sql = format!(
            "SELECT {} FROM {} {filter} {tail}",
            list.join(", "),
            self.qualified(table)
        );
        let rows = self.text_rows(&sql).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                columns
                    .iter()
                    .zip(row)
                    .map(|((name, oid), text)| {
                        let json = match (view.columns.rule(name), text) {
                            (ColumnRule::Mask(kind), Some(text)) => {
                                view.columns.mask(kind, text.as_bytes())
                            }
                            (_, None) => Json::Null,
                            // As the capture does: a value it cannot convert travels as its text.
                            (_, Some(text)) => {
                                text_to_json(*oid, &text).unwrap_or(Json::String(text))
                            }
                        };
                        (name.clone(), json)
                    })
                    .collect()
            })
            .collect())
    }
}

/// How a star table's key is ordered and compared on the Postgres side so that its order is
/// ClickHouse's: the SQL expression over the key's source column, or why no such expression is known.
pub fn key_expression(table: &TableModel, key_oid: u32) -> Result<String, String> {
    let column = quote_ident(&table.key_column().source);
    let ty = table.key_column().ty.base();
    if ty.is_integer() {
        if INTEGER_OIDS.contains(&key_oid) {
            Ok(column)
        } else {
            // A digit string converts to the integer key: order by its number.
            Ok(format!("({column}::text)::numeric"))
        }
    } else if matches!(
        ty,
        ColumnType::String | ColumnType::LowCardinalityString { .. } | ColumnType::Uuid
    ) {
        // ClickHouse compares strings bytewise, as the C collation does; a UUID key is compared as
        // its lowercase text on both sides (`clickhouse_key_range` in the verifier).
        Ok(format!("({column}::text COLLATE \"C\")"))
    } else {
        Err(format!(
            "key {} is {}: ClickHouse orders it differently from Postgres, so key ranges cannot \
             be matched",
            table.key_column().name,
            table.key_column().ty
        ))
    }
}

/// A payload's key as text, as [`crate::verify::compare::key_text`] prints a converted key.
pub fn payload_key_text(json: &Json) -> String {
    match json {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A Postgres literal for a key value (integers, strings, UUIDs: what keys may be).
pub fn key_literal(key: &Value) -> String {
    quote_literal(&crate::verify::compare::key_text(key))
}

/// The Kafka-payload JSON of a key value, for a delete envelope.
pub fn key_json(key: &Value) -> Json {
    match key {
        Value::UInt(v) => Json::from(*v),
        Value::Int(v) => Json::from(*v),
        other => Json::String(crate::verify::compare::key_text(other)),
    }
}

/// The values of star table `id`'s copied columns the sink writes for `payload` (a source row of
/// its source), or why the sink would refuse the row.
pub fn convert_row(plan: &StarModel, id: TableId, payload: &Payload) -> Result<Vec<Value>, String> {
    let table = &plan.tables[id];
    let envelope = Envelope {
        metadata: Metadata {
            table: table.source.clone(),
            operation: Operation::Update,
            lsn: Some(Lsn(1)),
            commit_lsn: None,
            tx_seq: None,
            commit_time: None,
            unchanged_toast: Vec::new(),
            old_key: None,
        },
        payload: payload.clone(),
    };
    let bytes = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
    let routed = route(plan, &bytes).map_err(|e| e.to_string())?;
    routed
        .changes
        .into_iter()
        .rfind(|c| c.table == id && !c.deleted)
        .map(|c| c.values)
        .ok_or_else(|| format!("the row does not route to {}", table.name))
}

/// Whether a lookup's `CAST` from `from` to `to` leaves the sink's values as they are, so the
/// verifier may take the referenced value unchanged. Other casts are ClickHouse's to compute.
pub fn identity_cast(from: &ColumnType, to: &ColumnType) -> bool {
    let string = |t: &ColumnType| {
        matches!(
            t,
            ColumnType::String | ColumnType::LowCardinalityString { .. }
        )
    };
    from == to || (string(from) && string(to))
}

/// Why the verifier cannot compute a lookup of `table` (a cast it does not know to be the
/// identity), if any.
pub fn unsupported_lookup(plan: &StarModel, table: &TableModel) -> Option<String> {
    for lookup in &table.lookups {
        let node = &table.nodes[lookup.node];
        let fetched = &node.fetched[lookup.fetch];
        let from = &plan.tables[node.table].columns[fetched.column].ty;
        if let Some(to) = &fetched.cast
            && !identity_cast(from, to)
        {
            return Some(format!(
                "lookup {} casts {from} to {to}, which only ClickHouse computes",
                lookup.name
            ));
        }
    }
    None
}

/// The expected rows of star table `id` for the source rows `payloads`: copied columns converted as
/// the sink converts them, then the lookups computed from Postgres.
pub async fn expected_rows(
    source: &mut Source,
    plan: &StarModel,
    id: TableId,
    payloads: &[Payload],
) -> Result<Expected, VerifyError> {
    expected_rows_of(Some(source), plan, id, payloads).await
}

/// [`expected_rows`] without the lookups: what decides the keys and the refused rows.
pub async fn expected_copies(
    plan: &StarModel,
    id: TableId,
    payloads: &[Payload],
) -> Result<Expected, VerifyError> {
    expected_rows_of(None, plan, id, payloads).await
}

/// The expected rows, their lookups computed from `source` when given.
async fn expected_rows_of(
    source: Option<&mut Source>,
    plan: &StarModel,
    id: TableId,
    payloads: &[Payload],
) -> Result<Expected, VerifyError> {
    let table = &plan.tables[id];
    let key_source = &table.key_column().source;
    let mut expected = Expected::default();
    let mut rows: Vec<Vec<Value>> = Vec::with_capacity(payloads.len());
    for payload in payloads {
        match convert_row(plan, id, payload) {
            Ok(values) => rows.push(values),
            Err(reason) => {
                let raw = payload.get(key_source);
                expected.refused.push(Refused {
                    key: convert(raw, &table.key_column().ty, key_source)
                        .ok()
                        .map(|k| key_form(&k)),
                    text: raw.map(payload_key_text).unwrap_or_default(),
                    reason,
                });
            }
        }
    }
    if let Some(source) = source
        && !table.lookups.is_empty()
    {
        add_lookups(source, plan, table, &mut rows).await?;
    }
    expected.rows = rows
        .into_iter()
        .map(|row| (key_form(&row[table.key]), row))
        .collect();
    Ok(expected)
}

/// Appends each row's lookups, node by node (parents first), as `enrich` does from ClickHouse.
async fn add_lookups(
    source: &mut Source,
    plan: &StarModel,
    fact: &TableModel,
    rows: &mut [Vec<Value>],
) -> Result<(), VerifyError> {
    // Per node, the fetched values of each referenced row by its key.
    let mut fetched: Vec<HashMap<Value, Vec<Value>>> = Vec::with_capacity(fact.nodes.len());
    for node in &fact.nodes {
        let keys: HashSet<Value> = match node.parent {
            None => rows
                .iter()
                .map(|r| key_form(&r[node.foreign_key]))
                .collect(),
            Some(parent) => fetched[parent]
                .values()
                .map(|record| key_form(&record[node.foreign_key]))
                .collect(),
        };
        let referenced_id = node.table;
        let referenced = &plan.tables[referenced_id];
        let mut records = HashMap::new();
        if !keys.is_empty() {
            let literals: Vec<String> = keys.iter().map(key_literal).collect();
            let condition = format!(
                "{} IN ({})",
                quote_ident(&referenced.key_column().source),
                literals.join(", ")
            );
            for payload in source
                .payloads(&referenced.source, Some(&condition), "")
                .await?
            {
                // A row the sink would refuse never reaches ClickHouse: the lookup finds nothing.
                let Ok(values) = convert_row(plan, referenced_id, &payload) else {
                    continue;
                };
                let record: Vec<Value> = node
                    .fetched
                    .iter()
                    .map(|f| values[f.column].clone())
                    .collect();
                records.insert(key_form(&values[referenced.key]), record);
            }
        }
        fetched.push(records);
    }
    for row in rows.iter_mut() {
        let mut reached: Vec<Option<&Vec<Value>>> = Vec::with_capacity(fact.nodes.len());
        for (index, node) in fact.nodes.iter().enumerate() {
            let key = match node.parent {
                None => Some(key_form(&row[node.foreign_key])),
                Some(parent) => reached[parent].map(|record| key_form(&record[node.foreign_key])),
            };
            reached.push(key.and_then(|k| fetched[index].get(&k)));
        }
        let values: Vec<Value> = fact
            .lookups
            .iter()
            .map(|lookup| {
                reached[lookup.node]
                    .map(|record| record[lookup.fetch].clone())
                    .unwrap_or_else(|| default_value(&lookup.ty))
            })
            .collect();
        row.extend(values);
    }
    Ok(())
}
