//! ClickHouse access: inserting rows of a star table in RowBinary and reading rows back with `FINAL`.
//!
//! Every statement goes through the `clickhouse` crate: inserts as pre-serialised RowBinary bodies
//! (`insert_formatted_with`), reads as RowBinary bytes decoded by the star model's column types, in its
//! table order ([`column_list`]). The stored state of the star schema is the sink's only state:
//! versions, unchanged TOASTed values and lookup values are read here, so a restarted or an additional
//! replica needs nothing else.
//!
//! Over 400 lines: every ClickHouse statement of the sink and its RowBinary framing in one place; a
//! sixth is tests.

pub mod rowbinary;
pub mod summary;

use std::time::Instant;

use bytes::Bytes;
use cdcstar_crds::ColumnType;
use cdcstar_crds::clickhouse_ddl::{ColumnDifference, compare_columns, quote_ident};
use cdcstar_crds::star::{Bookkeeping, LSN_COLUMN};
use cdcstar_crds::star_model::TableModel;

use crate::metrics::StatementMetrics;
use crate::route::value::{Value, quote_string, sql_literal};
use crate::store::rowbinary::{DecodeError, EncodeError, decode, encode};
use crate::store::summary::SummaryClient;

/// Largest query text the sink sends (key lists of big batches).
const MAX_QUERY_SIZE: &str = "268435456";

/// One row of a star table as written and read: copied columns then lookups, and the bookkeeping
/// columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Copied columns, then lookup columns (see [`TableModel::width`]).
    pub values: Vec<Value>,
    /// Row version (ReplacingMergeTree's version column).
    pub lsn: u64,
    pub deleted: bool,
    /// Facts: version of the fact's own source row. Dimensions: equal to `lsn`.
    pub source_lsn: u64,
}

/// Why a ClickHouse statement failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The statement failed; retrying may help (network, server down, timeouts, server errors).
    #[error("clickhouse {what} on {table} failed: {source}")]
    ClickHouse {
        /// What was being done (insert, select).
        what: &'static str,
        table: String,
        /// The client's error.
        source: clickhouse::error::Error,
    },
    /// A row read back could not be decoded (schema drift between the spec and the table).
    #[error("reading {table}: {source}")]
    Decode {
        table: String,
        /// The decoding error.
        source: DecodeError,
    },
    /// A value could not be encoded for its column (values are converted per column type when an
    /// event is routed, so this is a value that conversion let through).
    #[error("writing {table}: {source}")]
    Encode {
        table: String,
        /// The encoding error.
        source: EncodeError,
    },
    /// ClickHouse refused the rows of an insert, and the table no longer has the columns the spec
    /// declares: every row would be refused, so this is retried (and alerted on), not dead-lettered.
    #[error(
        "clickhouse refused rows of {table}, whose columns no longer match the spec ({}); \
         retrying until the table is fixed. Refusal: {refusal}",
        .drift.join("; ")
    )]
    SchemaDrift {
        table: String,
        /// Each difference that breaks inserts.
        drift: Vec<String>,
        /// The insert's error.
        refusal: String,
    },
}

/// ClickHouse exception codes that refuse the ROWS of an insert rather than the statement: a CHECK
/// constraint, a materialised view (or a default expression) that cannot compute or rejects a
/// value, a number or string out of its type's range. Any other failure (connection, timeout,
/// memory, a missing table or column, a server error) is retried.
pub const ROW_REFUSAL_CODES: &[(u32, &str)] = &[
    (6, "CANNOT_PARSE_TEXT"),
    (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
    (38, "CANNOT_PARSE_DATE"),
    (41, "CANNOT_PARSE_DATETIME"),
    (69, "ARGUMENT_OUT_OF_BOUND"),
    (70, "CANNOT_CONVERT_TYPE"),
    (72, "CANNOT_PARSE_NUMBER"),
    (131, "TOO_LARGE_STRING_SIZE"),
    (321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"),
    (395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO"),
    (407, "DECIMAL_OVERFLOW"),
    (469, "VIOLATED_CONSTRAINT"),
];

/// The ClickHouse exception code an error carries (`Code: N. DB::Exception: ...`), if any.
pub fn exception_code(error: &clickhouse::error::Error) -> Option<u32> {
    let clickhouse::error::Error::BadResponse(text) = error else {
        return None;
    };
    let digits = text.split("Code: ").nth(1)?;
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

impl StoreError {
    /// For `map_err`: a ClickHouse statement doing `what` on `table` failed.
    pub(crate) fn clickhouse<'a>(
        what: &'static str,
        table: &'a str,
    ) -> impl Fn(clickhouse::error::Error) -> StoreError + Copy + 'a {
        move |source| StoreError::ClickHouse {
            what,
            table: table.to_owned(),
            source,
        }
    }

    /// Whether ClickHouse (or the encoder) refused the rows of an insert, as opposed to failing for
    /// reasons that retrying fixes. See [`ROW_REFUSAL_CODES`].
    pub fn refuses_rows(&self) -> bool {
        match self {
            StoreError::ClickHouse {
                what: "insert",
                source,
                ..
            } => exception_code(source)
                .is_some_and(|code| ROW_REFUSAL_CODES.iter().any(|(c, _)| *c == code)),
            StoreError::Encode { .. } => true,
            _ => false,
        }
    }

    /// The star table the failed statement was about.
    pub fn table(&self) -> &str {
        match self {
            StoreError::ClickHouse { table, .. }
            | StoreError::Decode { table, .. }
            | StoreError::Encode { table, .. }
            | StoreError::SchemaDrift { table, .. } => table,
        }
    }
}

/// Connection settings.
#[derive(Clone)]
pub struct StoreConfig {
    /// HTTP endpoint.
    pub url: String,
    /// Database of the star schema.
    pub database: String,
    /// User name.
    pub user: Option<String>,
    /// Password (never logged).
    pub password: Option<String>,
}

cdcstar_runtime::debug_fields!(StoreConfig {
    url,
    database,
    user
});

/// The ClickHouse side of the sink.
#[derive(Clone)]
pub struct Store {
    client: clickhouse::Client,
    /// The same endpoint and settings, for statements that report the rows they wrote.
    counting: SummaryClient,
    config: StoreConfig,
    settings: Vec<(String, String)>,
    database: String,
    statements: StatementMetrics,
}

cdcstar_runtime::debug_fields!(Store {});

impl Store {
    /// A store for `config` (no connection is made yet).
    pub fn new(config: &StoreConfig) -> Self {
        let mut client = clickhouse::Client::default()
            .with_url(&config.url)
            .with_database(&config.database)
            .with_option("max_query_size", MAX_QUERY_SIZE);
        if let Some(user) = &config.user {
            client = client.with_user(user);
        }
        if let Some(password) = &config.password {
            client = client.with_password(password);
        }
        Store {
            client,
            counting: SummaryClient::new(config, &[("max_query_size", MAX_QUERY_SIZE)]),
            config: config.clone(),
            settings: vec![("max_query_size".to_owned(), MAX_QUERY_SIZE.to_owned())],
            database: config.database.clone(),
            statements: StatementMetrics::default(),
        }
    }

    /// A store for `config`, with the settings `pipeline`'s placement needs (a cluster's).
    pub fn for_pipeline(config: &StoreConfig, pipeline: &cdcstar_crds::CdcPipeline) -> Self {
        Store::new(config).with_settings(
            cdcstar_crds::clickhouse_placement::Placement::of(pipeline).sink_settings(),
        )
    }

    /// Sends `settings` with every statement: what the pipeline's placement needs
    /// ([`cdcstar_crds::clickhouse_placement::Placement::sink_settings`]; none on one server).
    pub fn with_settings(self, settings: &[(&str, &str)]) -> Self {
        let client = settings.iter().fold(self.client, |client, (name, value)| {
            client.with_option(*name, *value)
        });
        let mut all = self.settings;
        all.extend(settings.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        let pairs: Vec<(&str, &str)> = all.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let counting = SummaryClient::new(&self.config, &pairs);
        Store {
            client,
            counting,
            settings: all,
            ..self
        }
    }

    /// Counts and times the statements of the row paths in `statements`, per kind
    /// ([`crate::metrics::Metrics::clickhouse_statements`]).
    pub fn counting_statements(self, statements: StatementMetrics) -> Self {
        Store { statements, ..self }
    }

    /// The underlying client, for statements outside the row paths (DDL, health checks).
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    /// The star schema's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Checks that ClickHouse answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .query("SELECT 1")
            .execute()
            .await
            .map_err(StoreError::clickhouse("ping", ""))
    }

    /// The columns (name, type as ClickHouse prints it) of `table` in the star schema's database, or
    /// `None` when it does not exist.
    pub async fn existing_columns(
        &self,
        table: &str,
    ) -> Result<Option<Vec<(String, String)>>, StoreError> {
        let columns = self
            .client
            .query(cdcstar_crds::clickhouse_ddl::EXISTING_COLUMNS_QUERY)
            .param("database", &self.database)
            .param("table", table)
            .fetch_all::<(String, String)>()
            .await
            .map_err(StoreError::clickhouse("read columns", table))?;
        Ok((!columns.is_empty()).then_some(columns))
    }

    /// What makes `table` in ClickHouse unable to take the sink's rows: each column the sink writes
    /// that is missing or has another type (empty when inserts match the table).
    pub async fn insert_drift(&self, table: &TableModel) -> Result<Vec<String>, StoreError> {
        let existing = self.existing_columns(&table.name).await?;
        Ok(insert_drift(table, existing.as_deref()))
    }

    /// Inserts `rows` into `table` in one statement; returns the body size in bytes.
    pub async fn insert(&self, table: &TableModel, rows: &[Row]) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let body = encode_rows(table, rows).map_err(|source| StoreError::Encode {
            table: table.name.clone(),
            source,
        })?;
        let size = body.len();
        let sql = format!(
            "INSERT INTO {} ({}) FORMAT RowBinary",
            quote_ident(&table.name),
            column_list(table)
        );
        let fail = StoreError::clickhouse("insert", &table.name);
        let started = Instant::now();
        let mut insert = self.client.insert_formatted_with(sql);
        let sent = match insert.send(Bytes::from(body)).await {
            Ok(()) => insert.end().await,
            Err(error) => Err(error),
        };
        self.statements.record("insert", started);
        sent.map_err(fail)?;
        tracing::debug!(table = %table.name, rows = rows.len(), bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64, "inserted");
        Ok(size)
    }

    /// Sends `statement` (an `INSERT ... FORMAT X` into `table`) with `body`, rows in that format:
    /// the status tables' inserts, whose rows are not star rows.
    pub async fn insert_formatted(
        &self,
        table: &str,
        statement: String,
        body: Vec<u8>,
    ) -> Result<(), StoreError> {
        let fail = StoreError::clickhouse("insert", table);
        let mut insert = self.client.insert_formatted_with(statement);
        insert.send(Bytes::from(body)).await.map_err(fail)?;
        insert.end().await.map_err(fail)
    }

    /// Reads the current version of the rows of `table` matching `filter` (an SQL condition),
    /// deleted rows included.
    ///
    /// NB: not `FINAL`: with `ReplacingMergeTree(lsn, is_deleted)`, `FINAL` hides deleted rows, and
    /// the version rules need a tombstone's versions (a key deleted and inserted again must get a
    /// version above the tombstone's). The newest version per key is what `FINAL` would merge to.
    pub async fn read_rows(
        &self,
        table: &TableModel,
        filter: &str,
    ) -> Result<Vec<Row>, StoreError> {
        let key = quote_ident(&table.key_column().name);
        let sql = format!(
            "SELECT {} FROM {} WHERE {filter} ORDER BY {key}, {} DESC LIMIT 1 BY {key}",
            column_list(table),
            quote_ident(&table.name),
            quote_ident(LSN_COLUMN),
        );
        let types: Vec<ColumnType> = table
            .schema_columns()
            .into_iter()
            .map(|c| c.column_type)
            .collect();
        let records = self.select(&table.name, &sql, &types).await?;
        let width = table.width();
        Ok(records
            .into_iter()
            .map(|mut record| {
                let bookkeeping = record.split_off(width);
                let mut row = Row {
                    values: record,
                    lsn: 0,
                    deleted: false,
                    source_lsn: 0,
                };
                let mut source_lsn = None;
                for (column, value) in table.bookkeeping().iter().zip(bookkeeping) {
                    let Value::UInt(value) = value else { continue };
                    match column {
                        Bookkeeping::SourceLsn => source_lsn = Some(value),
                        Bookkeeping::Lsn => row.lsn = value,
                        Bookkeeping::IsDeleted => row.deleted = value == 1,
                    }
                }
                row.source_lsn = source_lsn.unwrap_or(row.lsn);
                row
            })
            .collect())
    }

    /// Runs an `INSERT ... SELECT` into `table` and returns the rows it wrote. Its failures are an
    /// insert's: a refusal of the rows it writes is a refusal of the events that caused them
    /// ([`StoreError::refuses_rows`]).
    pub async fn insert_select(&self, table: &str, sql: &str) -> Result<usize, StoreError> {
        let started = Instant::now();
        let executed = self.counting.written_rows(sql).await;
        self.statements.record("insert_select", started);
        let rows = executed.map_err(StoreError::clickhouse("insert", table))?;
        tracing::debug!(
            table,
            rows,
            sql_bytes = sql.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "inserted from a select"
        );
        Ok(rows as usize)
    }

    /// Runs a `SELECT count() ...`.
    pub async fn count(&self, table: &str, sql: &str) -> Result<usize, StoreError> {
        let records = self
            .fetch("count", table, sql, &[ColumnType::UInt64])
            .await?;
        Ok(match records.first().and_then(|r| r.first()) {
            Some(Value::UInt(count)) => *count as usize,
            _ => 0,
        })
    }

    /// Runs `sql` and decodes each result row with `types`.
    pub async fn select(
        &self,
        table: &str,
        sql: &str,
        types: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        self.fetch("select", table, sql, types).await
    }

    /// Runs `sql`, a statement of `kind` ([`StatementMetrics`]), and decodes each result row with
    /// `types`.
    async fn fetch(
        &self,
        kind: &'static str,
        table: &str,
        sql: &str,
        types: &[ColumnType],
    ) -> Result<Vec<Vec<Value>>, StoreError> {
        let started = Instant::now();
        let fail = StoreError::clickhouse("select", table);
        let fetched = match self.client.query(sql).fetch_bytes("RowBinary") {
            Ok(mut cursor) => cursor.collect().await,
            Err(error) => Err(error),
        };
        self.statements.record(kind, started);
        let bytes = fetched.map_err(fail)?;
        tracing::debug!(
            table,
            bytes = bytes.len(),
            sql_bytes = sql.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "selected"
        );
        let mut input: &[u8] = &bytes;
        let mut records = Vec::new();
        while !input.is_empty() {
            let mut record = Vec::with_capacity(types.len());
            for ty in types {
                record.push(decode(ty, &mut input).map_err(|source| StoreError::Decode {
                    table: table.to_owned(),
                    source,
                })?);
            }
            records.push(record);
        }
        Ok(records)
    }
}

/// Each column `table`'s rows write that `existing` (name, type as ClickHouse prints it; `None` for
/// a missing table) lacks or types differently. Columns the sink does not write do not matter.
pub fn insert_drift(table: &TableModel, existing: Option<&[(String, String)]>) -> Vec<String> {
    let Some(existing) = existing else {
        return vec![format!("table {} does not exist", table.name)];
    };
    compare_columns(&table.schema_columns(), existing)
        .into_iter()
        .filter_map(|difference| match difference {
            ColumnDifference::Missing(column) => Some(format!("column {} is missing", column.name)),
            ColumnDifference::TypeChanged { column, existing } => Some(format!(
                "column {} is {existing}, the sink writes {}",
                column.name, column.column_type
            )),
            ColumnDifference::Undeclared { .. } => None,
        })
        .collect()
}

/// Quoted names of every column of `table`, in table order: what a full row writes and reads.
pub fn column_list(table: &TableModel) -> String {
    table
        .schema_columns()
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// RowBinary body of `rows` in the order of [`column_list`].
pub fn encode_rows(table: &TableModel, rows: &[Row]) -> Result<Vec<u8>, EncodeError> {
    let mut body = Vec::with_capacity(rows.len() * 64);
    let width = table.width();
    for row in rows {
        for (index, value) in row.values.iter().enumerate().take(width) {
            encode(value, table.value_type(index), &mut body)?;
        }
        for column in table.bookkeeping() {
            match column {
                Bookkeeping::SourceLsn => body.extend_from_slice(&row.source_lsn.to_le_bytes()),
                Bookkeeping::Lsn => body.extend_from_slice(&row.lsn.to_le_bytes()),
                Bookkeeping::IsDeleted => body.push(u8::from(row.deleted)),
            }
        }
    }
    Ok(body)
}

/// Key lists up to this length are written as SQL literals; longer ones as one JSON string.
const LITERAL_LIST_MAX: usize = 64;

/// `column IN (k1, k2, ...)`, or `0` (false) for no keys.
///
/// NB: ClickHouse parses every literal of an `IN (...)` list into its own syntax-tree node, which
/// costs about a second for 30k keys; a long list is therefore sent as a single string literal
/// holding a JSON array, `column IN (SELECT arrayJoin(JSONExtract('[...]', 'Array(T)')))`, which
/// parses in milliseconds and still uses the primary key index.
pub fn in_list<'a>(column: &str, keys: impl IntoIterator<Item = &'a Value>) -> String {
    let keys: Vec<&Value> = keys.into_iter().collect();
    if keys.is_empty() {
        return "0".to_owned();
    }
    let column = quote_ident(column);
    if keys.len() <= LITERAL_LIST_MAX {
        let list: Vec<String> = keys.iter().map(|k| sql_literal(k)).collect();
        return format!("{column} IN ({})", list.join(", "));
    }
    let mut element = "UInt64";
    let mut json = String::with_capacity(keys.len() * 8);
    json.push('[');
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        match key {
            Value::UInt(v) => json.push_str(&v.to_string()),
            Value::Int(v) => {
                element = "Int64";
                json.push_str(&v.to_string());
            }
            Value::Uuid(u) => {
                element = "UUID";
                json.push('"');
                json.push_str(&uuid::Uuid::from_u128(*u).to_string());
                json.push('"');
            }
            other => {
                element = "String";
                let text = match other {
                    Value::String(s) => s.clone(),
                    _ => sql_literal(other),
                };
                json.push_str(&serde_json::Value::String(text).to_string());
            }
        }
    }
    json.push(']');
    format!(
        "{column} IN (SELECT arrayJoin(JSONExtract({}, 'Array({element})')))",
        quote_string(&json)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_response(text: &str) -> StoreError {
        StoreError::ClickHouse {
            what: "insert",
            table: "t".to_owned(),
            source: clickhouse::error::Error::BadResponse(text.to_owned()),
        }
    }

    #[test]
    fn only_row_refusals_of_inserts_are_refusals() {
        let constraint = "Code: 469. DB::Exception: Constraint `c` for table t is violated at row 1. \
             (VIOLATED_CONSTRAINT) (version 26.9.2.1)";
        assert_eq!(
            exception_code(&clickhouse::error::Error::BadResponse(
                constraint.to_owned()
            )),
            Some(469)
        );
        assert!(bad_response(constraint).refuses_rows());
        assert!(
            bad_response("Code: 395. DB::Exception: too big: while pushing to view v")
                .refuses_rows()
        );
        // The table or a column is gone, memory ran out, the server is down: retried.
        assert!(!bad_response("Code: 16. DB::Exception: No such column x").refuses_rows());
        assert!(!bad_response("Code: 241. DB::Exception: Memory limit exceeded").refuses_rows());
        assert!(!bad_response("503 Service Unavailable").refuses_rows());
        let select = StoreError::ClickHouse {
            what: "select",
            table: "t".to_owned(),
            source: clickhouse::error::Error::BadResponse(constraint.to_owned()),
        };
        assert!(!select.refuses_rows());
        let network = StoreError::ClickHouse {
            what: "insert",
            table: "t".to_owned(),
            source: clickhouse::error::Error::TimedOut,
        };
        assert!(!network.refuses_rows());
        assert_eq!(network.table(), "t");
    }

    #[test]
    fn drift_is_what_the_rows_written_do_not_fit() {
        let plan =
            cdcstar_crds::star_model::StarModel::for_pipeline(&crate::test_fixtures::shop().spec)
                .unwrap();
        let table = &plan.tables[plan.table_id("product_dim").unwrap()];
        let mut existing: Vec<(String, String)> = table
            .schema_columns()
            .iter()
            .map(|c| (c.name.clone(), c.column_type.to_string()))
            .collect();
        existing.push(("added_by_hand".to_owned(), "String".to_owned()));
        assert!(insert_drift(table, Some(&existing)).is_empty());
        existing[1].1 = "LowCardinality(String)".to_owned();
        existing.remove(2);
        assert_eq!(
            insert_drift(table, Some(&existing)),
            [
                "column name is LowCardinality(String), the sink writes String",
                "column category is missing"
            ]
        );
        assert_eq!(
            insert_drift(table, None),
            ["table product_dim does not exist"]
        );
    }

    #[test]
    fn short_key_lists_are_literals_and_long_ones_one_json_string() {
        assert_eq!(in_list("id", &[] as &[Value]), "0");
        assert_eq!(
            in_list("id", &[Value::UInt(1), Value::UInt(2)]),
            "`id` IN (1, 2)"
        );
        let many: Vec<Value> = (0..100).map(Value::UInt).collect();
        let filter = in_list("id", &many);
        assert!(
            filter.starts_with("`id` IN (SELECT arrayJoin(JSONExtract('[0,1,2,"),
            "{filter}"
        );
        assert!(filter.ends_with(",99]', 'Array(UInt64)')))"), "{filter}");
        let names: Vec<Value> = (0..100)
            .map(|i| Value::String(format!("it's {i}?")))
            .collect();
        let filter = in_list("name", &names);
        assert!(filter.contains(r#"\'s 0??""#), "{filter}");
        assert!(filter.ends_with("'Array(String)')))"), "{filter}");
    }
}
