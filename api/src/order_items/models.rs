//! Order item request and response bodies; JSON names are the reference's column names.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money;
use crate::validation::{Validate, Validator};

/// An order item row: a quantity of a product in an order, at a unit price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
#[sqlx(rename_all = "camelCase")]
pub struct OrderItem {
    /// Primary key.
    pub id: i32,
    /// The order this item belongs to.
    pub order_id: i32,
    /// The product ordered.
    pub product_id: i32,
    /// How many, greater than 0.
    #[schema(example = 2)]
    pub quantity: i32,
    /// Unit price, greater than 0.
    #[schema(example = 29.99)]
    pub price: f64,
}

crate::rows::table!(
    OrderItem,
    resource: "order item",
    table: "orderitem",
    columns: r#"id, "orderId", "productId", quantity, price"#,
);

/// The body of `POST /api/order-items`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewOrderItem {
    /// An existing order.
    #[serde(deserialize_with = "money::int")]
    pub order_id: i32,
    /// An existing product.
    #[serde(deserialize_with = "money::int")]
    pub product_id: i32,
    /// How many, greater than 0.
    #[schema(example = 2, minimum = 1)]
    #[serde(deserialize_with = "money::int")]
    pub quantity: i32,
    /// Unit price, greater than 0 (number or numeric string).
    #[serde(deserialize_with = "money::float")]
    #[schema(example = 29.99, exclusive_minimum = 0)]
    pub price: f64,
}

impl Validate for NewOrderItem {
    fn validate(&self, v: &mut Validator) {
        v.positive_int("quantity", self.quantity);
        v.positive_float("price", self.price);
    }
}

/// The body of `PUT /api/order-items/{id}`: the fields to change; absent or null fields keep
/// their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemUpdate {
    /// Move the item to another existing order.
    #[serde(default, deserialize_with = "money::optional_int")]
    pub order_id: Option<i32>,
    /// Another existing product.
    #[serde(default, deserialize_with = "money::optional_int")]
    pub product_id: Option<i32>,
    /// New quantity, greater than 0.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "money::optional_int")]
    pub quantity: Option<i32>,
    /// New unit price, greater than 0 (number or numeric string).
    #[serde(default, deserialize_with = "money::optional_float")]
    #[schema(exclusive_minimum = 0)]
    pub price: Option<f64>,
}

impl Validate for OrderItemUpdate {
    fn validate(&self, v: &mut Validator) {
        v.optional("quantity", self.quantity, Validator::positive_int);
        v.optional("price", self.price, Validator::positive_float);
    }
}
