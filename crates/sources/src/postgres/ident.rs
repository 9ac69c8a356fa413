//! SQL quoting and `schema.name` keys.

/// Quotes an SQL identifier (always, so case and special characters survive).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal (standard_conforming_strings is on since 9.1).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Splits `schema.table`, `"My Schema"."a.b"` or `table` into `(schema, name)`,
/// removing quotes; unquoted parts are taken as written (no case folding, since
/// users pass the names they see in `\dt`).
pub fn split_qualified(name: &str) -> (Option<String>, String) {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes && parts.is_empty() => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    if parts.len() == 2 {
        let name = parts.pop().unwrap_or_default();
        (parts.pop(), name)
    } else {
        (None, parts.pop().unwrap_or_default())
    }
}

/// `schema.name` as the key used in [`DependencyInfo`] and checksum maps.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(
            split_qualified("public.t"),
            (Some("public".into()), "t".into())
        );
        assert_eq!(split_qualified("t"), (None, "t".into()));
        assert_eq!(
            split_qualified("\"My S\".\"a.b\""),
            (Some("My S".into()), "a.b".into())
        );
        assert_eq!(split_qualified("\"a\"\"q\""), (None, "a\"q".into()));
    }
}
