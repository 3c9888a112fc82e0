//! Extractors that answer the API's own 422 envelope instead of axum's plain-text rejections:
//! [`ValidJson`] (a JSON body, decoded and validated, naming the bad field) and [`IdPath`] (an
//! integer `{id}` path segment).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use crate::error::{ApiError, FieldError};
use crate::validation::{Validate, Validator};

/// A JSON body decoded into `T` and checked with [`Validate`]. Malformed JSON, a missing or
/// mistyped field and every failed check answer 422 with `details` naming the field.
#[derive(Debug, Clone)]
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate + ToSchema,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        let object = parse_object(&bytes)?;
        let missing = missing_required_fields::<T>(&object);
        if !missing.is_empty() {
            return Err(ApiError::Validation(missing));
        }
        // NB: decoded from the bytes, not from `object`: a money field reads its number's text.
        let value: T = from_slice(&bytes)?;
        let mut validator = Validator::new();
        value.validate(&mut validator);
        validator.finish()?;
        Ok(Self(value))
    }
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::invalid_field("body", rejection.body_text().to_lowercase())
    }
}

/// Parses a body that must be one JSON object.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::invalid_field("body", "expected a JSON object")),
        Err(err) => Err(ApiError::invalid_field(
            "body",
            format!("invalid JSON: {}", strip_position(&err)),
        )),
    }
}

/// Every top-level field `T`'s schema requires and `object` lacks, so one answer names them all
/// (serde stops at the first).
pub fn missing_required_fields<T: ToSchema>(object: &Map<String, Value>) -> Vec<FieldError> {
    let RefOr::T(Schema::Object(schema)) = T::schema() else {
        return Vec::new();
    };
    schema
        .required
        .iter()
        .filter(|name| !object.contains_key(name.as_str()))
        .map(|name| FieldError::new(name.as_str(), "field required"))
        .collect()
}

/// Decodes `T` from a JSON object, turning a serde error into a 422 naming the field at fault.
pub fn from_object<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(object))
        .map_err(|err| ApiError::Validation(vec![field_error_of(&err)]))
}

/// Decodes `T` from JSON text, turning a serde error into a 422 naming the field at fault.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut json)
        .map_err(|err| ApiError::Validation(vec![field_error_of(&err)]))?;
    json.end()
        .map_err(|err| ApiError::invalid_field("body", strip_position(&err)))?;
    Ok(value)
}

/// Decodes a JSON body that must be an object into `T` (see [`parse_object`], [`from_slice`]).
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    parse_object(bytes)?;
    from_slice(bytes)
}

fn field_error_of(err: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let message = strip_position(err.inner());
    let path = err.path().to_string();
    // NB: serde reports a missing field at its parent's path, with the name in backquotes.
    if let Some(missing) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        let field = if path == "." {
            missing.to_owned()
        } else {
            format!("{path}.{missing}")
        };
        return FieldError::new(field, "field required");
    }
    let field = if path == "." { "body".to_owned() } else { path };
    FieldError::new(field, message)
}

/// serde_json's message without its ` at line L column C` suffix.
fn strip_position(err: &serde_json::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The `{id}` path segment of a resource URL, as a database id. A non-integer answers 422 naming
/// `id`; an id no row has answers 404 in the handler.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub i32);

/// The route's one path parameter as text; a missing or undecodable one is a 422 naming `field`.
pub async fn path_text<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    field: &str,
) -> Result<String, ApiError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|rejection| ApiError::invalid_field(field, rejection.body_text()))?;
    Ok(raw)
}

/// The query string's `name=value` pairs, in order; an undecodable query string is a 422 naming
/// `query`.
pub fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map_err(|rejection| ApiError::invalid_field("query", rejection.body_text()))?;
    Ok(pairs)
}

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_text(parts, state, "id").await?;
        raw.parse::<i32>()
            .map(IdPath)
            .map_err(|_| ApiError::invalid_field("id", format!("must be an integer, got {raw:?}")))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        items: Vec<Line>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Line {
        quantity: i32,
    }

    fn field_of(json: &str) -> FieldError {
        match decode_json::<Body>(json.as_bytes()) {
            Err(ApiError::Validation(mut fields)) => fields.remove(0),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn serde_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"items": []}"#),
            FieldError::new("email", "field required")
        );
        assert_eq!(field_of(r#"{"email": 5, "items": []}"#).field, "email");
        assert_eq!(
            field_of(r#"{"email": "a@b.c", "items": [{"quantity": 1}, {"quantity": "x"}]}"#).field,
            "items[1].quantity"
        );
        assert_eq!(
            field_of(r#"{"email": "a@b.c", "items": [{}]}"#),
            FieldError::new("items[0].quantity", "field required")
        );
    }

    #[derive(Debug, Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Schemaed {
        order_id: i32,
        product_id: i32,
        note: Option<String>,
    }

    #[test]
    fn every_missing_required_field_is_named() {
        let object = parse_object(br#"{"note": "x"}"#).unwrap();
        let fields: Vec<String> = missing_required_fields::<Schemaed>(&object)
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, ["orderId", "productId"]);
        let object = parse_object(br#"{"orderId": 1, "productId": 2}"#).unwrap();
        assert!(missing_required_fields::<Schemaed>(&object).is_empty());
    }

    #[test]
    fn unreadable_bodies_blame_the_body() {
        assert_eq!(field_of("").field, "body");
        assert_eq!(field_of("{").field, "body");
        assert_eq!(field_of("[]").field, "body");
        assert_eq!(
            field_of(r#"{"email": "a@b.c", "items": []} x"#).field,
            "body"
        );
        assert!(!field_of("{").message.contains("line"));
    }
}
