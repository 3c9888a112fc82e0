//! Order request and response bodies; JSON names are the reference's column names.

use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money;
use crate::order_items::models::OrderItem;
use crate::validation::{Validate, Validator};

/// Status of an order created without one.
pub const DEFAULT_STATUS: &str = "pending";

/// An order row with its items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
#[sqlx(rename_all = "camelCase")]
pub struct Order {
    /// Primary key.
    pub id: i32,
    /// The customer who placed the order.
    pub customer_id: i32,
    /// When the order was placed, in UTC (written with `Z`); set at insert time, kept by updates
    /// that do not name it.
    #[serde(with = "crate::timestamps")]
    pub order_date: NaiveDateTime,
    /// Order total, greater than 0, 2 decimal places, as a JSON number.
    #[serde(with = "rust_decimal::serde::float")]
    #[schema(value_type = f64, example = 59.98)]
    pub total: Decimal,
    /// Free-form status, 1 to 50 characters (`pending` by default).
    #[schema(example = "pending")]
    pub status: String,
    /// The order's items, ordered by id.
    #[sqlx(skip)]
    pub items: Vec<OrderItem>,
}

/// One item of the optional `items` of `POST /api/orders`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewOrderLine {
    /// An existing product.
    #[serde(deserialize_with = "money::int")]
    pub product_id: i32,
    /// How many, greater than 0.
    #[schema(example = 1, minimum = 1)]
    #[serde(deserialize_with = "money::int")]
    pub quantity: i32,
    /// Unit price, greater than 0 (number or numeric string).
    #[serde(deserialize_with = "money::float")]
    #[schema(example = 29.99, exclusive_minimum = 0)]
    pub price: f64,
}

crate::validation::request_body! {
    /// The body of `POST /api/orders`.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NewOrder {
        /// An existing customer (400 otherwise).
        #[serde(deserialize_with = "money::int")]
        pub customer_id: i32,
        /// Status, 1 to 50 characters; `pending` when absent or null.
        #[schema(example = "pending")]
        pub status: Option<String> as text(min = 1, max = 50),
        /// Order total, greater than 0 with at most 2 decimal places (number or numeric string).
        #[serde(deserialize_with = "money::decimal")]
        #[schema(value_type = f64, example = 59.98, exclusive_minimum = 0, exclusive_maximum = 10_000_000_000_f64, multiple_of = 0.01)]
        pub total: Decimal,
        /// Items created with the order, atomically (an extension of the reference,
        /// which adds items afterwards through `/api/order-items`).
        #[serde(default)]
        pub items: Vec<NewOrderLine>,
    }
}

impl Validate for NewOrder {
    fn validate(&self, v: &mut Validator) {
        v.optional_text("status", self.status.as_deref(), 1, 50);
        v.money("total", self.total);
        for (i, item) in self.items.iter().enumerate() {
            v.positive_int(&format!("items[{i}].quantity"), item.quantity);
            v.positive_float(&format!("items[{i}].price"), item.price);
        }
    }
}

crate::validation::request_body! {
    /// The body of `PUT` and `PATCH /api/orders/{id}`: the fields to change; absent or null fields
    /// keep their value (`orderDate` included).
    #[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct OrderUpdate {
        /// Another existing customer (400 otherwise).
        #[serde(default, deserialize_with = "money::optional_int")]
        pub customer_id: Option<i32>,
        /// New status, 1 to 50 characters.
        #[schema(example = "shipped")]
        pub status: Option<String> as text(min = 1, max = 50),
        /// New total, greater than 0 with at most 2 decimal places (number or numeric string).
        #[serde(default, deserialize_with = "money::optional_decimal")]
        #[schema(value_type = Option<f64>, exclusive_minimum = 0, exclusive_maximum = 10_000_000_000_f64, multiple_of = 0.01)]
        pub total: Option<Decimal>,
        /// New order date, from 1900-01-01T00:00:00Z to 2299-12-31T23:59:59.999999Z (the range the
        /// analytics side stores); an offset is converted to UTC, none means UTC. The pattern names
        /// only days that exist (no June 31st; February 29th in leap years only), as the parser does.
        #[serde(default, deserialize_with = "money::optional_timestamp")]
        #[schema(value_type = Option<String>, pattern = r"^((19[0-9]{2}|2[0-2][0-9]{2})-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))|(19(0[48]|[2468][048]|[13579][26])|20([02468][048]|[13579][26])|2[12](0[48]|[2468][048]|[13579][26]))-02-29)T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$")]
        pub order_date: Option<NaiveDateTime>,
    }
}

impl Validate for OrderUpdate {
    fn validate(&self, v: &mut Validator) {
        v.optional_text("status", self.status.as_deref(), 1, 50);
        v.optional("total", self.total, Validator::money);
        v.optional("orderDate", self.order_date, Validator::timestamp);
    }
}
