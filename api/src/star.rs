//! `GET /api/star/{table}`: a read-only, bounded view of the pipeline's star schema in ClickHouse,
//! for the test client page (`/client`, see [`crate::client`]) to show what the CDC pipeline made of
//! its writes and how long that took.
//!
//! Only the four tables of the shop's star schema (`customer_dim`, `product_dim`, `order_fact`,
//! `orderitem_fact`) can be read, newest key first, `FINAL` and without deleted rows, at most
//! [`MAX_LIMIT`] rows, optionally filtered by one of a few id columns. The browser sends no SQL:
//! table and column names come from [`StarTable`], values are passed as typed ClickHouse query
//! parameters. Enabled by `--clickhouse-url` (`CLICKHOUSE_URL`); without it the endpoint answers 404.
//!
//! Over 400 lines: the handler, its bounded query building and the response shape are one small
//! feature, kept in one file with its tests.

use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::config::ClickHouseArgs;
use crate::envelope::ApiResponse;
use crate::error::{ApiError, ErrorBody, FieldError};
use crate::extract::{path_text, query_pairs};

/// Rows answered when the request gives no `limit`.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest `limit` accepted.
pub const MAX_LIMIT: u32 = 100;
/// How long one read of ClickHouse may take before it answers 503.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A table of the shop's star schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StarTable {
    /// Customers (`customer_id`).
    CustomerDim,
    /// Products (`product_id`).
    ProductDim,
    /// Orders with their customer's name and email (`order_id`).
    OrderFact,
    /// Order items with their product, order status and date, customer country and city
    /// (`orderitem_id`).
    OrderitemFact,
}

/// An id column a star table can be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `customer_id`.
    Customer,
    /// `product_id`.
    Product,
    /// `order_id`.
    Order,
    /// `orderitem_id`.
    OrderItem,
}

impl Filter {
    const ALL: [Self; 4] = [Self::Customer, Self::Product, Self::Order, Self::OrderItem];

    /// The query parameter, also the column's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Customer => "customer_id",
            Self::Product => "product_id",
            Self::Order => "order_id",
            Self::OrderItem => "orderitem_id",
        }
    }
}

impl StarTable {
    /// Every table, in the page's order.
    pub const ALL: [Self; 4] = [
        Self::CustomerDim,
        Self::ProductDim,
        Self::OrderFact,
        Self::OrderitemFact,
    ];

    /// The table's name in ClickHouse.
    pub fn name(self) -> &'static str {
        match self {
            Self::CustomerDim => "customer_dim",
            Self::ProductDim => "product_dim",
            Self::OrderFact => "order_fact",
            Self::OrderitemFact => "orderitem_fact",
        }
    }

    /// The key column (rows are answered newest key first).
    pub fn key(self) -> &'static str {
        match self {
            Self::CustomerDim => "customer_id",
            Self::ProductDim => "product_id",
            Self::OrderFact => "order_id",
            Self::OrderitemFact => "orderitem_id",
        }
    }

    /// The condition `filter = {id}` on this table, `None` when the table cannot be filtered so.
    /// `orderitem_fact` has no `customer_id`: its rows of a customer are those of the customer's
    /// orders in `order_fact`.
    fn condition(self, filter: Filter) -> Option<String> {
        let column = filter.name();
        let direct = format!("{column} = {{id:UInt64}}");
        match (self, filter) {
            (Self::CustomerDim, Filter::Customer)
            | (Self::ProductDim, Filter::Product)
            | (Self::OrderFact, Filter::Order | Filter::Customer)
            | (Self::OrderitemFact, Filter::OrderItem | Filter::Order | Filter::Product) => {
                Some(direct)
            }
            (Self::OrderitemFact, Filter::Customer) => Some(
                "order_id IN (SELECT order_id FROM order_fact FINAL \
                 WHERE customer_id = {id:UInt64} AND is_deleted = 0)"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// The one statement this endpoint runs for a table, limit and filter.
    pub fn select(self, limit: u32, filter: Option<Filter>) -> Result<String, ApiError> {
        let mut conditions = vec!["is_deleted = 0".to_owned()];
        if let Some(filter) = filter {
            conditions.push(
                self.condition(filter)
                    .ok_or_else(|| ApiError::BadReference {
                        message: format!("{} cannot be filtered by {}", self.name(), filter.name()),
                        details: vec![FieldError::new(
                            filter.name(),
                            format!("not a filter of {}", self.name()),
                        )],
                    })?,
            );
        }
        Ok(format!(
            "SELECT * EXCEPT (is_deleted) FROM {table} FINAL WHERE {conditions} \
             ORDER BY {key} DESC LIMIT {limit}",
            table = self.name(),
            conditions = conditions.join(" AND "),
            key = self.key(),
        ))
    }
}

/// The query string of `GET /api/star/{table}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StarQuery {
    /// How many rows to answer, newest key first, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// Only rows of this customer (`customer_dim`, `order_fact`, and `orderitem_fact` through the
    /// customer's orders). At most one filter per request.
    #[param(minimum = 0)]
    pub customer_id: Option<i64>,
    /// Only rows of this product (`product_dim`, `orderitem_fact`).
    #[param(minimum = 0)]
    pub product_id: Option<i64>,
    /// Only rows of this order (`order_fact`, `orderitem_fact`).
    #[param(minimum = 0)]
    pub order_id: Option<i64>,
    /// Only this order item (`orderitem_fact`).
    #[param(minimum = 0)]
    pub orderitem_id: Option<i64>,
}

/// A validated [`StarQuery`]: the limit and at most one filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StarRequest {
    /// 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// The filter and its id (0 to `i64::MAX`, as the document's int64 says).
    pub filter: Option<(Filter, i64)>,
}

impl StarRequest {
    /// Reads the limit and the filter from a query string's pairs; other parameters are ignored.
    /// A bad value answers 422 naming it; two filters answer 400.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ApiError> {
        let mut limit = DEFAULT_LIMIT;
        let mut filters = Vec::new();
        let mut errors = Vec::new();
        for (name, value) in pairs {
            if name == "limit" {
                match value.parse::<u32>() {
                    Ok(n) if (1..=MAX_LIMIT).contains(&n) => limit = n,
                    _ => errors.push(FieldError::new(
                        "limit",
                        format!("must be an integer from 1 to {MAX_LIMIT}"),
                    )),
                }
            } else if let Some(filter) = Filter::ALL.into_iter().find(|f| f.name() == name) {
                match value.parse::<i64>() {
                    Ok(id) if id >= 0 => filters.push((filter, id)),
                    _ => errors.push(FieldError::new(name, "must be an integer >= 0")),
                }
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        if filters.len() > 1 {
            return Err(ApiError::BadReference {
                message: "at most one filter per request".to_owned(),
                details: filters
                    .iter()
                    .map(|(f, _)| FieldError::new(f.name(), "one filter only"))
                    .collect(),
            });
        }
        Ok(Self {
            limit,
            filter: filters.pop(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for StarRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = query_pairs(parts)?;
        Self::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A column of a star table: its name and ClickHouse type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StarColumn {
    /// Column name, e.g. `customer_name`.
    pub name: String,
    /// ClickHouse type, e.g. `LowCardinality(String)`.
    #[serde(rename = "type")]
    pub type_: String,
}

/// The latest rows of one star table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StarRows {
    /// The star table read (one of the four of the reference app's schema).
    pub table: StarTable,
    /// Its key column; rows are ordered by it, newest first.
    pub key: String,
    /// The ClickHouse database read.
    pub database: String,
    /// The columns of `rows` (every column but `is_deleted`), in table order.
    pub columns: Vec<StarColumn>,
    /// The rows as ClickHouse's JSON format writes them (64-bit integers as numbers, dates as
    /// `YYYY-MM-DD hh:mm:ss.ffffff` strings), `FINAL`, deleted rows left out.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Map<String, Value>>,
}

/// Reads the star schema in ClickHouse.
#[derive(Clone)]
pub struct StarReader {
    client: clickhouse::Client,
    database: String,
}

cdcstar_runtime::debug_fields!(StarReader { database });

/// ClickHouse's `FORMAT JSON` answer, the parts read here.
#[derive(Debug, Deserialize)]
struct JsonFormat {
    meta: Vec<StarColumn>,
    data: Vec<Map<String, Value>>,
}

impl StarReader {
    /// A reader from the command line's ClickHouse settings; `None` when no URL is set.
    pub fn from_args(args: &ClickHouseArgs) -> Option<Self> {
        let url = args
            .clickhouse_url
            .as_deref()
            .filter(|url| !url.is_empty())?;
        let mut client = clickhouse::Client::default()
            .with_url(url)
            .with_database(&args.clickhouse_database)
            // NB: ids as JSON numbers, as the shop API writes them.
            .with_option("output_format_json_quote_64bit_integers", "0")
            .with_option("output_format_json_quote_decimals", "0");
        if let Some(user) = &args.clickhouse_user {
            client = client.with_user(user);
        }
        if let Some(password) = &args.clickhouse_password {
            client = client.with_password(password);
        }
        Some(Self {
            client,
            database: args.clickhouse_database.clone(),
        })
    }

    /// The database read.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The latest rows of `table` for a validated request.
    pub async fn read(&self, table: StarTable, request: StarRequest) -> Result<StarRows, ApiError> {
        let sql = table.select(request.limit, request.filter.map(|(f, _)| f))?;
        let mut query = self.client.query(&sql);
        if let Some((_, id)) = request.filter {
            query = query.param("id", id);
        }
        let fetch = async {
            let mut cursor = query.fetch_bytes("JSON")?;
            cursor.collect().await
        };
        let bytes = match tokio::time::timeout(QUERY_TIMEOUT, fetch).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(err)) => return Err(self.error(table, &err.to_string())),
            Err(_) => {
                return Err(self.error(
                    table,
                    &format!("no answer within {}s", QUERY_TIMEOUT.as_secs()),
                ));
            }
        };
        let answer: JsonFormat = serde_json::from_slice(&bytes).map_err(|err| {
            self.error(
                table,
                &format!("unreadable JSON answer from ClickHouse: {err}"),
            )
        })?;
        Ok(StarRows {
            table,
            key: table.key().to_owned(),
            database: self.database.clone(),
            columns: answer.meta,
            rows: answer.data,
        })
    }

    fn error(&self, table: StarTable, cause: &str) -> ApiError {
        // ClickHouse names an unknown table or database with these codes: the pipeline has not
        // created its star schema (yet), which is a 404 and not an outage.
        let missing = ["UNKNOWN_TABLE", "UNKNOWN_DATABASE"]
            .iter()
            .any(|code| cause.contains(code));
        let message = if missing {
            format!(
                "{}.{} does not exist in ClickHouse (has the pipeline created its star schema?)",
                self.database,
                table.name()
            )
        } else {
            let first_line = cause.lines().next().unwrap_or_default();
            let short: String = first_line.chars().take(300).collect();
            format!(
                "could not read {}.{} from ClickHouse: {short}",
                self.database,
                table.name()
            )
        };
        ApiError::Star { missing, message }
    }
}

/// The `{table}` path segment; an unknown table answers 422 naming `table`.
#[derive(Debug, Clone, Copy)]
pub struct TablePath(pub StarTable);

impl<S: Send + Sync> FromRequestParts<S> for TablePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_text(parts, state, "table").await?;
        StarTable::ALL
            .into_iter()
            .find(|table| table.name() == raw)
            .map(TablePath)
            .ok_or_else(|| {
                let names: Vec<_> = StarTable::ALL.iter().map(|t| t.name()).collect();
                ApiError::invalid_field(
                    "table",
                    format!("must be one of {}, got {raw:?}", names.join(", ")),
                )
            })
    }
}

/// The latest rows of a star-schema table in ClickHouse.
#[utoipa::path(
    get, path = "/api/star/{table}", tag = "star",
    params(
        ("table" = StarTable, Path, description = "A table of the star schema"),
        StarQuery,
    ),
    responses(
        (status = 200, description = "The table's latest rows, newest key first, FINAL, deleted rows left out", body = ApiResponse<StarRows>),
        (status = 400, description = "A filter the table does not have, or more than one filter", body = ErrorBody),
        (status = 404, description = "The star view is not configured (no CLICKHOUSE_URL), or the table does not exist in ClickHouse yet", body = ErrorBody),
        (status = 422, description = "An unknown table, a bad `limit` or a bad id", body = ErrorBody),
        (status = 503, description = "ClickHouse did not answer, or failed", body = ErrorBody),
    )
)]
pub async fn star_rows(
    State(state): State<AppState>,
    TablePath(table): TablePath,
    request: StarRequest,
) -> Result<ApiResponse<StarRows>, ApiError> {
    let reader = state.star.as_ref().ok_or(ApiError::StarNotConfigured)?;
    let rows = reader.read(table, request).await?;
    let count = rows.rows.len();
    Ok(ApiResponse::ok(
        rows,
        format!("{count} rows of {} retrieved", table.name()),
    ))
}

/// The star route, with its OpenAPI operation.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(star_rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_bounded_and_filters_checked() {
        let request = StarRequest::from_pairs([]).unwrap();
        assert_eq!(request.limit, DEFAULT_LIMIT);
        assert_eq!(request.filter, None);
        let request = StarRequest::from_pairs([("limit", "5"), ("order_id", "7")]).unwrap();
        assert_eq!(request.limit, 5);
        assert_eq!(request.filter, Some((Filter::Order, 7)));
        assert!(matches!(
            StarRequest::from_pairs([("limit", "101")]),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            StarRequest::from_pairs([("order_id", "-1")]),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            StarRequest::from_pairs([("order_id", "9223372036854775808")]),
            Err(ApiError::Validation(_))
        ));
        assert!(matches!(
            StarRequest::from_pairs([("order_id", "1"), ("customer_id", "2")]),
            Err(ApiError::BadReference { .. })
        ));
    }

    #[test]
    fn statements_name_only_known_tables_and_columns() {
        assert_eq!(
            StarTable::OrderFact
                .select(20, Some(Filter::Customer))
                .unwrap(),
            "SELECT * EXCEPT (is_deleted) FROM order_fact FINAL WHERE is_deleted = 0 AND \
             customer_id = {id:UInt64} ORDER BY order_id DESC LIMIT 20"
        );
        assert!(
            StarTable::OrderitemFact
                .select(1, Some(Filter::Customer))
                .unwrap()
                .contains("order_id IN (SELECT order_id FROM order_fact FINAL")
        );
        assert!(matches!(
            StarTable::ProductDim.select(1, Some(Filter::Order)),
            Err(ApiError::BadReference { .. })
        ));
    }
}
