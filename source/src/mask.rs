//! What leaves the capture of each column: `spec.source.tables[].excludeColumns` and `mask`,
//! applied where a decoded row becomes an envelope payload (the capture's streamed changes in
//! `cdcstar_capture::row`, its snapshot rows in `cdcstar_capture::read_event`; the sink's verifier
//! reads source rows the same way), so an excluded column or a masked value is in no event,
//! no log line and no dead letter.
//!
//! - excluded: the column is left out of the payload, and out of `unchangedToast` too (its name
//!   would say that it exists and that it changed);
//! - `hash`: the lowercase hex HMAC-SHA256 of the value's text (Postgres's text output, the same
//!   from the stream and from snapshot queries), keyed by the pipeline's salt: equal values give
//!   equal hashes across tables, rows and restarts, so they still join, while the salt keeps a
//!   dictionary of likely values from being hashed by anyone without it;
//! - `redact`: the string `REDACTED`;
//! - `null`: JSON null.
//!
//! NULL stays NULL under `hash` and `redact` (there is no value to hide). A masked value is never
//! converted, so it never produces a conversion warning either.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use cdcstar_crds::pipeline::{MaskKind, SourceTable};
use ring::hmac;
use serde_json::Value;

/// What a redacted value becomes.
pub const REDACTED: &str = "REDACTED";

/// The salt of `mask: hash`, from the Secret `spec.source.maskSaltSecretRef` names. `Debug` never
/// prints it.
#[derive(Clone)]
pub struct MaskSalt(Vec<u8>);

impl MaskSalt {
    /// A salt of these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        MaskSalt(bytes.into())
    }
}

impl fmt::Debug for MaskSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for MaskSalt {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err("the mask salt must not be empty".into());
        }
        Ok(MaskSalt::new(text.as_bytes()))
    }
}

/// Why a table's column rules cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A column is hashed and the capture has no salt.
    #[error(
        "column {table}.{column} is masked with hash but no salt was given (CAPTURE_MASK_SALT, from the Secret spec.source.maskSaltSecretRef names)"
    )]
    MissingSalt { table: String, column: String },
}

/// What happens to one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRule {
    /// Sent as it is.
    Keep,
    /// Never sent.
    Exclude,
    /// Sent masked.
    Mask(MaskKind),
}

/// The exclusion and masking of one table's columns.
#[derive(Clone, Default)]
pub struct ColumnRules {
    rules: HashMap<String, ColumnRule>,
    key: Option<hmac::Key>,
}

impl fmt::Debug for ColumnRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColumnRules")
            .field("rules", &self.rules)
            .field("salted", &self.key.is_some())
            .finish()
    }
}

impl ColumnRules {
    /// The rules `table` declares; `salt` keys its hashes (required when a column uses `hash`).
    pub fn for_table(table: &SourceTable, salt: Option<&MaskSalt>) -> Result<Self, MaskError> {
        let mut rules: HashMap<String, ColumnRule> = table
            .exclude_columns
            .iter()
            .map(|column| (column.clone(), ColumnRule::Exclude))
            .collect();
        for mask in &table.mask {
            if mask.with == MaskKind::Hash && salt.is_none() {
                return Err(MaskError::MissingSalt {
                    table: table.name.clone(),
                    column: mask.column.clone(),
                });
            }
            rules
                .entry(mask.column.clone())
                .or_insert(ColumnRule::Mask(mask.with));
        }
        Ok(ColumnRules {
            rules,
            key: salt.map(|salt| hmac::Key::new(hmac::HMAC_SHA256, &salt.0)),
        })
    }

    /// What happens to `column`.
    pub fn rule(&self, column: &str) -> ColumnRule {
        self.rules.get(column).copied().unwrap_or(ColumnRule::Keep)
    }

    /// Whether `column` is never sent.
    pub fn excludes(&self, column: &str) -> bool {
        self.rule(column) == ColumnRule::Exclude
    }

    /// The masked form of a value whose text is `text`.
    pub fn mask(&self, kind: MaskKind, text: &[u8]) -> Value {
        match kind {
            MaskKind::Hash => Value::String(self.hash(text)),
            MaskKind::Redact => Value::String(REDACTED.to_owned()),
            MaskKind::Null => Value::Null,
        }
    }

    /// [`Self::mask`] written as JSON to `out`.
    pub fn write_mask(&self, kind: MaskKind, text: &[u8], out: &mut Vec<u8>) {
        match kind {
            MaskKind::Hash => {
                out.push(b'"');
                out.extend_from_slice(self.hash(text).as_bytes());
                out.push(b'"');
            }
            MaskKind::Redact => {
                out.push(b'"');
                out.extend_from_slice(REDACTED.as_bytes());
                out.push(b'"');
            }
            MaskKind::Null => out.extend_from_slice(b"null"),
        }
    }

    fn hash(&self, text: &[u8]) -> String {
        // NB: `for_table` refuses a hashed column without a salt, so there is a key here.
        let key = self
            .key
            .as_ref()
            .expect("a table with a hashed column has a salt");
        let tag = hmac::sign(key, text);
        let mut hex = String::with_capacity(64);
        for byte in tag.as_ref() {
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0x0f)]));
        }
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdcstar_crds::pipeline::ColumnMask;

    fn table() -> SourceTable {
        let mut table = SourceTable::new("customer", "id");
        table.exclude_columns = vec!["phone".into()];
        table.mask = vec![
            ColumnMask {
                column: "email".into(),
                with: MaskKind::Hash,
            },
            ColumnMask {
                column: "name".into(),
                with: MaskKind::Redact,
            },
            ColumnMask {
                column: "city".into(),
                with: MaskKind::Null,
            },
        ];
        table
    }

    #[test]
    fn hash_is_the_hmac_sha256_of_the_text_in_lowercase_hex() {
        // RFC 4231, test case 2.
        let mut table = SourceTable::new("t", "id");
        table.mask = vec![ColumnMask {
            column: "c".into(),
            with: MaskKind::Hash,
        }];
        let rules = ColumnRules::for_table(&table, Some(&MaskSalt::new("Jefe"))).unwrap();
        assert_eq!(
            rules.mask(MaskKind::Hash, b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn equal_values_hash_equally_and_the_salt_changes_every_hash() {
        let salted =
            |salt: &str| ColumnRules::for_table(&table(), Some(&MaskSalt::new(salt))).unwrap();
        let (a, b) = (salted("one"), salted("two"));
        assert_eq!(
            a.mask(MaskKind::Hash, b"jane@example.com"),
            a.mask(MaskKind::Hash, b"jane@example.com")
        );
        assert_ne!(
            a.mask(MaskKind::Hash, b"jane@example.com"),
            a.mask(MaskKind::Hash, b"joe@example.com")
        );
        assert_ne!(
            a.mask(MaskKind::Hash, b"jane@example.com"),
            b.mask(MaskKind::Hash, b"jane@example.com")
        );
    }

    #[test]
    fn rules_and_their_json_forms() {
        let rules = ColumnRules::for_table(&table(), Some(&MaskSalt::new("s"))).unwrap();
        assert_eq!(rules.rule("phone"), ColumnRule::Exclude);
        assert_eq!(rules.rule("email"), ColumnRule::Mask(MaskKind::Hash));
        assert_eq!(rules.rule("id"), ColumnRule::Keep);
        for (kind, text) in [
            (MaskKind::Hash, &b"x"[..]),
            (MaskKind::Redact, b"Jane"),
            (MaskKind::Null, b"Paris"),
        ] {
            let mut out = Vec::new();
            rules.write_mask(kind, text, &mut out);
            assert_eq!(
                serde_json::from_slice::<Value>(&out).unwrap(),
                rules.mask(kind, text)
            );
        }
        assert_eq!(rules.mask(MaskKind::Redact, b"Jane"), REDACTED);
        assert_eq!(rules.mask(MaskKind::Null, b"Paris"), Value::Null);
    }

    #[test]
    fn hash_without_a_salt_is_refused_and_the_salt_is_never_printed() {
        let err = ColumnRules::for_table(&table(), None).unwrap_err();
        assert!(err.to_string().contains("customer.email"), "{err}");
        let salt: MaskSalt = "secret-salt".parse().unwrap();
        let rules = ColumnRules::for_table(&table(), Some(&salt)).unwrap();
        assert!(!format!("{salt:?} {rules:?}").contains("secret-salt"));
        assert!("".parse::<MaskSalt>().is_err());
    }
}
