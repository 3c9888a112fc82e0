//! Customer request and response bodies; JSON names are the reference's column names.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::{Validate, Validator};

/// A customer row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
#[serde(rename_all = "camelCase")]
#[sqlx(rename_all = "camelCase")]
pub struct Customer {
    /// Primary key.
    pub id: i32,
    /// Unique email address.
    #[schema(example = "jane@example.com")]
    pub email: String,
    /// Full name, 1 to 255 characters.
    #[schema(example = "Jane Doe")]
    pub name: String,
    /// Country, 1 to 100 characters.
    #[schema(example = "USA")]
    pub country: String,
    /// City, 1 to 100 characters.
    #[schema(example = "San Francisco")]
    pub city: String,
    /// When the row was inserted, in UTC (written with `Z`).
    #[serde(with = "crate::timestamps")]
    pub created_at: NaiveDateTime,
}

crate::rows::table!(
    Customer,
    resource: "customer",
    table: "customer",
    columns: r#"id, email, name, country, city, "createdAt""#,
);

/// The body of `POST /api/customers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewCustomer {
    /// Unique email address, at most 255 characters.
    #[schema(
        example = "jane@example.com",
        max_length = 255,
        format = Email,
        pattern = r"^[^\u0000]*$"
    )]
    pub email: String,
    /// Full name.
    #[schema(
        example = "Jane Doe",
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000]*$"
    )]
    pub name: String,
    /// Country.
    #[schema(
        example = "USA",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*$"
    )]
    pub country: String,
    /// City.
    #[schema(
        example = "San Francisco",
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*$"
    )]
    pub city: String,
}

impl Validate for NewCustomer {
    fn validate(&self, v: &mut Validator) {
        v.email("email", &self.email);
        v.text("name", &self.name, 1, 255);
        v.text("country", &self.country, 1, 100);
        v.text("city", &self.city, 1, 100);
    }
}

/// The body of `PUT /api/customers/{id}`: the fields to change; absent or null fields keep their
/// value.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerUpdate {
    /// New unique email address.
    #[schema(max_length = 255, format = Email, pattern = r"^[^\u0000]*$")]
    pub email: Option<String>,
    /// New name.
    #[schema(min_length = 1, max_length = 255, pattern = r"^[^\u0000]*$")]
    pub name: Option<String>,
    /// New country.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*$")]
    pub country: Option<String>,
    /// New city.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\u0000]*$")]
    pub city: Option<String>,
}

impl Validate for CustomerUpdate {
    fn validate(&self, v: &mut Validator) {
        if let Some(email) = &self.email {
            v.email("email", email);
        }
        v.optional_text("name", self.name.as_deref(), 1, 255);
        v.optional_text("country", self.country.as_deref(), 1, 100);
        v.optional_text("city", self.city.as_deref(), 1, 100);
    }
}
