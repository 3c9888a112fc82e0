//! Customer handlers: [`crate::resource`]'s, around the customer's own statements.

use super::models::{Customer, CustomerUpdate, NewCustomer};
use crate::connections::RowQuery;

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
    /// Create a customer.
    create: create_customer(NewCustomer) => insert,
        refused: "The email is already taken",
    /// Update a customer: absent fields keep their value.
    update: update_customer(CustomerUpdate) => update,
        refused: "The email is already taken",
);

/// The `INSERT` of a new customer, answering the row.
fn insert(new: &NewCustomer) -> RowQuery<'_, Customer> {
    sqlx::query_as(
        r#"INSERT INTO customer (email, name, country, city) VALUES ($1, $2, $3, $4)
           RETURNING id, email, name, country, city, "createdAt""#,
    )
    .bind(&new.email)
    .bind(&new.name)
    .bind(&new.country)
    .bind(&new.city)
}

/// The `UPDATE` of customer `id`, answering the row (none when there is no such customer).
fn update(id: i32, update: &CustomerUpdate) -> RowQuery<'_, Customer> {
    sqlx::query_as(
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
    .bind(&update.city)
}
