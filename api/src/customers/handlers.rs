//! Customer handlers: one SQL statement each; the list, read and delete handlers are
//! [`crate::resource`]'s.

use axum::extract::State;

use super::models::{Customer, CustomerUpdate, NewCustomer};
use crate::app::AppState;
use crate::envelope::{ApiResponse, Created};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{IdPath, ValidJson};
use crate::rows;

crate::resource::handlers!(
    Customer,
    tag: "customers",
    path: "/api/customers",
    id_path: "/api/customers/{id}",
    one: "customer",
    One: "Customer",
    Many: "Customers",
    listing: "customers",
    reading: "customer",
    /// List customers, ordered by id.
    list: list_customers,
    /// Read one customer.
    get: get_customer,
    /// Delete a customer, with its orders and their items.
    delete: delete_customer => "Deleted, with its orders and their items",
);

/// Create a customer.
#[utoipa::path(
    post, path = "/api/customers", tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "The created customer", body = ApiResponse<Customer>),
        (status = 409, description = "The email is already taken", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    )
)]
pub async fn create_customer(
    State(state): State<AppState>,
    ValidJson(new): ValidJson<NewCustomer>,
) -> Result<Created<Customer>, ApiError> {
    let query = sqlx::query_as::<_, Customer>(
        r#"INSERT INTO customer (email, name, country, city) VALUES ($1, $2, $3, $4)
           RETURNING id, email, name, country, city, "createdAt""#,
    )
    .bind(&new.email)
    .bind(&new.name)
    .bind(&new.country)
    .bind(&new.city);
    let customer = state.db.fetch_one(query).await?;
    Ok(Created::new(customer, "Customer created successfully"))
}

/// Update a customer: absent fields keep their value.
#[utoipa::path(
    put, path = "/api/customers/{id}", tag = "customers",
    params(("id" = i32, Path, description = "Customer id")),
    request_body = CustomerUpdate,
    responses(
        (status = 200, description = "The updated customer", body = ApiResponse<Customer>),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 409, description = "The email is already taken", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    )
)]
pub async fn update_customer(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    ValidJson(update): ValidJson<CustomerUpdate>,
) -> Result<ApiResponse<Customer>, ApiError> {
    let query = sqlx::query_as::<_, Customer>(
        r#"UPDATE customer SET
               email = COALESCE($2, email),
               name = COALESCE($3, name),
               country = COALESCE($4, country),
               city = COALESCE($5, city)
           WHERE id = $1
           RETURNING id, email, name, country, city, "createdAt""#,
    )
    .bind(id)
    .bind(&update.email)
    .bind(&update.name)
    .bind(&update.country)
    .bind(&update.city);
    let customer = rows::found(state.db.fetch_optional(query).await?, id)?;
    Ok(ApiResponse::ok(customer, "Customer updated successfully"))
}
