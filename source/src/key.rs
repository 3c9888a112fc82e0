//! The Kafka key of a row's messages: all changes of a row go to one partition, in order.

use serde_json::{Map, Value};

/// The Kafka key of a row: the primary key column's JSON value, `None` when it is absent or null.
pub fn message_key(payload: &Map<String, Value>, primary_key: &str) -> Option<Vec<u8>> {
    match payload.get(primary_key) {
        None | Some(Value::Null) => None,
        Some(value) => serde_json::to_vec(value).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_key_is_the_primary_key_as_json_and_none_without_one() {
        let payload = json!({"id": 7, "code": "A-1", "gone": null});
        let payload = payload.as_object().unwrap();
        assert_eq!(message_key(payload, "id").as_deref(), Some(&b"7"[..]));
        assert_eq!(
            message_key(payload, "code").as_deref(),
            Some(&b"\"A-1\""[..])
        );
        assert_eq!(message_key(payload, "gone"), None);
        assert_eq!(message_key(payload, "missing"), None);
    }
}
