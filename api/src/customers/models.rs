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

crate::validation::request_body! {
    /// The body of `POST /api/customers`.
    #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct NewCustomer {
        /// Unique email address, at most 255 characters.
        #[schema(example = "jane@example.com", format = Email)]
        pub email: String as text(max = 255),
        /// Full name.
        #[schema(example = "Jane Doe")]
        pub name: String as text(min = 1, max = 255),
        /// Country.
        #[schema(example = "USA")]
        pub country: String as text(min = 1, max = 100),
        /// City.
        #[schema(example = "San Francisco")]
        pub city: String as text(min = 1, max = 100),
    }
}

impl Validate for NewCustomer {
    fn validate(&self, v: &mut Validator) {
        v.email("email", &self.email);
        v.text("name", &self.name, 1, 255);
        v.text("country", &self.country, 1, 100);
        v.text("city", &self.city, 1, 100);
    }
}

crate::validation::request_body! {
    /// The body of `PUT /api/customers/{id}`: the fields to change; absent or null fields keep their
    /// value.
    #[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct CustomerUpdate {
        /// New unique email address.
        #[schema(format = Email)]
        pub email: Option<String> as text(max = 255),
        /// New name.
        pub name: Option<String> as text(min = 1, max = 255),
        /// New country.
        pub country: Option<String> as text(min = 1, max = 100),
        /// New city.
        pub city: Option<String> as text(min = 1, max = 100),
    }
}

impl Validate for CustomerUpdate {
    fn validate(&self, v: &mut Validator) {
        v.optional("email", self.email.as_deref(), Validator::email);
        v.optional_text("name", self.name.as_deref(), 1, 255);
        v.optional_text("country", self.country.as_deref(), 1, 100);
        v.optional_text("city", self.city.as_deref(), 1, 100);
    }
}
