//! Parser of PostgreSQL's array text form (`{1,2,NULL}`, `{"a b","c\"d"}`, `{{1,2},{3,4}}`,
//! `[0:1]={7,8}`), producing a tree of raw element texts that `value` converts element by element.

/// A parsed array: nested arrays and elements, `None` for an unquoted `NULL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayNode {
    /// A (sub-)array.
    Array(Vec<ArrayNode>),
    /// One element's text, `None` for SQL NULL.
    Element(Option<String>),
}

/// Why an array literal could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed array literal at byte {position}: {reason}")]
pub struct ArrayParseError {
    /// Byte offset of the problem.
    pub position: usize,
    /// What was wrong.
    pub reason: &'static str,
}

/// Parses an array literal with `delimiter` between elements (`,` for every built-in type except
/// `box`).
pub fn parse_array(text: &str, delimiter: u8) -> Result<ArrayNode, ArrayParseError> {
    let bytes = text.as_bytes();
    // An explicit dimension decoration (`[1:2]={...}`) precedes the braces when lower bounds are
    // not 1; the elements are what matters here.
    let start = if bytes.first() == Some(&b'[') {
        text.find('=').map(|i| i + 1).ok_or(ArrayParseError {
            position: 0,
            reason: "dimension decoration without '='",
        })?
    } else {
        0
    };
    let mut parser = Parser {
        bytes,
        position: start,
        delimiter,
    };
    let node = parser.array()?;
    if parser.position != bytes.len() {
        return Err(parser.error("trailing characters after the array"));
    }
    Ok(node)
}

struct Parser<'a> {
    bytes: &'a [u8],
    position: usize,
    delimiter: u8,
}

impl Parser<'_> {
    fn error(&self, reason: &'static str) -> ArrayParseError {
        ArrayParseError {
            position: self.position,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.position).copied()
    }

    fn array(&mut self) -> Result<ArrayNode, ArrayParseError> {
        if self.peek() != Some(b'{') {
            return Err(self.error("expected '{'"));
        }
        self.position += 1;
        let mut items = Vec::new();
        if self.peek() == Some(b'}') {
            self.position += 1;
            return Ok(ArrayNode::Array(items));
        }
        loop {
            let item = match self.peek() {
                Some(b'{') => self.array()?,
                Some(b'"') => ArrayNode::Element(Some(self.quoted()?)),
                Some(_) => self.unquoted()?,
                None => return Err(self.error("unterminated array")),
            };
            items.push(item);
            match self.peek() {
                Some(b'}') => {
                    self.position += 1;
                    return Ok(ArrayNode::Array(items));
                }
                Some(c) if c == self.delimiter => self.position += 1,
                _ => return Err(self.error("expected a delimiter or '}'")),
            }
        }
    }

    fn quoted(&mut self) -> Result<String, ArrayParseError> {
        self.position += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.position += 1;
                    return String::from_utf8(out).map_err(|_| self.error("invalid utf-8"));
                }
                Some(b'\\') => {
                    self.position += 1;
                    let escaped = self.peek().ok_or_else(|| self.error("dangling escape"))?;
                    out.push(escaped);
                    self.position += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.position += 1;
                }
                None => return Err(self.error("unterminated quoted element")),
            }
        }
    }

    fn unquoted(&mut self) -> Result<ArrayNode, ArrayParseError> {
        let start = self.position;
        while let Some(c) = self.peek() {
            if c == self.delimiter || c == b'}' {
                break;
            }
            if c == b'{' || c == b'"' {
                return Err(self.error("unexpected character in unquoted element"));
            }
            self.position += 1;
        }
        let raw = std::str::from_utf8(&self.bytes[start..self.position])
            .map_err(|_| self.error("invalid utf-8"))?
            .trim();
        if raw.is_empty() {
            return Err(self.error("empty unquoted element"));
        }
        Ok(ArrayNode::Element(if raw.eq_ignore_ascii_case("NULL") {
            None
        } else {
            Some(raw.to_owned())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(text: &str) -> ArrayNode {
        ArrayNode::Element(Some(text.to_owned()))
    }

    #[test]
    fn flat_array_with_null() {
        assert_eq!(
            parse_array("{1,2,NULL}", b',').unwrap(),
            ArrayNode::Array(vec![element("1"), element("2"), ArrayNode::Element(None)])
        );
    }

    #[test]
    fn quoted_elements_keep_spaces_escapes_and_the_word_null() {
        assert_eq!(
            parse_array(r#"{"a b","c\"d","NULL","x\\y",plain}"#, b',').unwrap(),
            ArrayNode::Array(vec![
                element("a b"),
                element("c\"d"),
                element("NULL"),
                element("x\\y"),
                element("plain"),
            ])
        );
    }

    #[test]
    fn nested_and_empty_arrays() {
        assert_eq!(
            parse_array("{{1,2},{3,4}}", b',').unwrap(),
            ArrayNode::Array(vec![
                ArrayNode::Array(vec![element("1"), element("2")]),
                ArrayNode::Array(vec![element("3"), element("4")]),
            ])
        );
        assert_eq!(parse_array("{}", b',').unwrap(), ArrayNode::Array(vec![]));
    }

    #[test]
    fn dimension_decoration_is_skipped() {
        assert_eq!(
            parse_array("[0:1]={7,8}", b',').unwrap(),
            ArrayNode::Array(vec![element("7"), element("8")])
        );
    }

    #[test]
    fn malformed_literals_are_errors() {
        for bad in ["", "1,2", "{1,2", "{1,,2}", "{\"a}", "{1}x", "[0:1]{1}"] {
            assert!(parse_array(bad, b',').is_err(), "{bad:?} must be rejected");
        }
    }
}
