//! Product request and response bodies; JSON names are the reference's column names.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::money;
use crate::validation::{Validate, Validator};

/// A product row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
#[sqlx(rename_all = "camelCase")]
pub struct Product {
    /// Primary key.
    pub id: i32,
    /// Name, 1 to 255 characters.
    #[schema(example = "Wireless Mouse")]
    pub name: String,
    /// Category, 1 to 100 characters.
    #[schema(example = "Electronics")]
    pub category: String,
    /// Unit price, greater than 0.
    #[schema(example = 29.99)]
    pub price: f64,
    /// When the row was inserted, in UTC (written with `Z`).
    #[serde(with = "crate::timestamps")]
    pub created_at: NaiveDateTime,
}

crate::rows::table!(
    Product,
    resource: "product",
    table: "product",
    columns: r#"id, name, category, price, "createdAt""#,
    referenced_by: "order items",
);

crate::validation::request_body! {
    /// The body of `POST /api/products`.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NewProduct {
        /// Name.
        #[schema(example = "Wireless Mouse")]
        pub name: String as text(min = 1, max = 255),
        /// Category.
        #[schema(example = "Electronics")]
        pub category: String as text(min = 1, max = 100),
        /// Unit price, greater than 0; a numeric string such as `"29.99"` is accepted too.
        #[serde(deserialize_with = "money::float")]
        #[schema(example = 29.99, exclusive_minimum = 0)]
        pub price: f64,
    }
}

impl Validate for NewProduct {
    fn validate(&self, v: &mut Validator) {
        v.text("name", &self.name, 1, 255);
        v.text("category", &self.category, 1, 100);
        v.positive_float("price", self.price);
    }
}

crate::validation::request_body! {
    /// The body of `PUT /api/products/{id}`: the fields to change; absent or null fields keep their
    /// value.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct ProductUpdate {
        /// New name.
        pub name: Option<String> as text(min = 1, max = 255),
        /// New category.
        pub category: Option<String> as text(min = 1, max = 100),
        /// New unit price, greater than 0 (number or numeric string).
        #[serde(default, deserialize_with = "money::optional_float")]
        #[schema(exclusive_minimum = 0)]
        pub price: Option<f64>,
    }
}

impl Validate for ProductUpdate {
    fn validate(&self, v: &mut Validator) {
        v.optional_text("name", self.name.as_deref(), 1, 255);
        v.optional_text("category", self.category.as_deref(), 1, 100);
        v.optional("price", self.price, Validator::positive_float);
    }
}
