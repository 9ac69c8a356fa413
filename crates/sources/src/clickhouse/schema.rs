//! Rewriting `SHOW CREATE` text for a restore.
//!
//! Text from current servers carries things that tie a table to the
//! server or cluster it came from; a restore onto one server removes them:
//! - `UUID '...'` after the name and `TO INNER UUID '...'` (Atomic
//!   databases): the target assigns new UUIDs, so a restore next to the
//!   original (another database name) never collides;
//! - `ON CLUSTER name`: a restore creates objects on the server it talks to;
//! - `Replicated*MergeTree('zk path', 'replica', args...)`: becomes the
//!   plain `*MergeTree(args...)` (the documented single-server choice), so a
//!   restore never registers a second replica under the original's
//!   ZooKeeper path (no REPLICA_ALREADY_EXISTS, no data shared with the
//!   original's replicas).
//!
//! Renames: the object's own name is replaced, and database names are
//! mapped wherever they qualify an identifier (`db.t` in a view's query, a
//! materialized view's `TO db.t`). Names inside string literals (the
//! arguments of `Distributed(...)`, `Merge(...)`, dictionary sources) are
//! left as written. The rewriter works on tokens, so string literals,
//! quoted identifiers and comments are never altered by accident.

use std::collections::BTreeMap;

use super::catalog::quote_ident;

/// A lexical token's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Space,
    Comment,
    Ident,
    Quoted,
    Str,
    Number,
    Punct,
}

/// A token: class and byte span.
#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Cut `sql` into tokens (whitespace and comments included, so the text
/// can be put back together exactly).
fn tokenize(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let c = b[i];
        let kind = if c.is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            Kind::Space
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            Kind::Comment
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i = (i + 2).min(b.len());
            Kind::Comment
        } else if c == b'\'' || c == b'`' || c == b'"' {
            i = quoted_end(b, i);
            if c == b'\'' {
                Kind::Str
            } else {
                Kind::Quoted
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            Kind::Ident
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
            Kind::Number
        } else {
            i += 1;
            Kind::Punct
        };
        out.push(Tok {
            kind,
            start,
            end: i,
        });
    }
    out
}

/// End of a quoted token starting at `i` (backslash escapes and doubled quotes).
fn quoted_end(b: &[u8], i: usize) -> usize {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

/// The name a quoted or bare identifier token stands for.
fn ident_value(sql: &str, t: &Tok) -> Option<String> {
    let text = &sql[t.start..t.end];
    match t.kind {
        Kind::Ident => Some(text.to_string()),
        Kind::Quoted if text.len() >= 2 => {
            let inner = &text[1..text.len() - 1];
            let q = text.chars().next()?;
            let mut out = String::new();
            let mut chars = inner.chars().peekable();
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else if ch == q && chars.peek() == Some(&q) {
                    chars.next();
                    out.push(q);
                } else {
                    out.push(ch);
                }
            }
            Some(out)
        }
        _ => None,
    }
}

/// What to change in a `CREATE` statement.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// The object's new `(database, name)`; `None` keeps the name (with
    /// its database mapped by `databases`).
    pub name: Option<(String, String)>,
    /// Database renames applied to qualified identifiers.
    pub databases: BTreeMap<String, String>,
}

/// What [`rewrite_create`] changed, for the restore's notes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The statement to run.
    pub sql: String,
    /// A `Replicated*MergeTree` engine became the plain one.
    pub unreplicated: bool,
}

/// Rewrite a `CREATE TABLE|VIEW|MATERIALIZED VIEW|DICTIONARY` statement as
/// described in the module documentation.
pub fn rewrite_create(sql: &str, rw: &Rewrite) -> Rewritten {
    let toks = tokenize(sql);
    let sig: Vec<usize> = (0..toks.len())
        .filter(|&i| !matches!(toks[i].kind, Kind::Space | Kind::Comment))
        .collect();
    let word = |k: usize| -> Option<String> {
        let t = toks[*sig.get(k)?];
        (t.kind == Kind::Ident).then(|| sql[t.start..t.end].to_ascii_uppercase())
    };
    let punct = |k: usize, p: &str| {
        sig.get(k)
            .is_some_and(|&i| toks[i].kind == Kind::Punct && &sql[toks[i].start..toks[i].end] == p)
    };
    // The header: CREATE [OR REPLACE] [TEMPORARY] <kind words> [IF NOT EXISTS] name.
    let mut k = 0;
    while let Some(w) = word(k) {
        let header = matches!(
            w.as_str(),
            "CREATE"
                | "ATTACH"
                | "OR"
                | "REPLACE"
                | "TEMPORARY"
                | "TABLE"
                | "VIEW"
                | "MATERIALIZED"
                | "LIVE"
                | "WINDOW"
                | "DICTIONARY"
                | "IF"
                | "NOT"
                | "EXISTS"
        );
        if !header {
            break;
        }
        k += 1;
    }
    let name_first = k;
    let name_last = if punct(k + 1, ".") { k + 2 } else { k };
    let mut out = String::with_capacity(sql.len());
    let mut unreplicated = false;
    let (mut i, end) = (0usize, toks.len());
    let name_span = sig
        .get(name_first)
        .zip(sig.get(name_last))
        .map(|(&a, &b)| (a, b));
    // Position in `sig` of token index `i`.
    let sig_pos = |i: usize| sig.binary_search(&i).ok();
    let mut in_header = true;
    while i < end {
        let t = toks[i];
        if let Some((a, b)) = name_span {
            if i == a {
                out.push_str(&object_name(sql, &toks, a, b, rw));
                i = b + 1;
                continue;
            }
        }
        let Some(k) = sig_pos(i) else {
            out.push_str(&sql[t.start..t.end]);
            i += 1;
            continue;
        };
        let w = word(k);
        // TO INNER UUID '...'  /  UUID '...'
        if w.as_deref() == Some("TO")
            && word(k + 1).as_deref() == Some("INNER")
            && word(k + 2).as_deref() == Some("UUID")
            && is_kind(&toks, &sig, k + 3, Kind::Str)
        {
            trim_trailing_space(&mut out);
            i = sig[k + 3] + 1;
            continue;
        }
        if w.as_deref() == Some("UUID") && is_kind(&toks, &sig, k + 1, Kind::Str) {
            trim_trailing_space(&mut out);
            i = sig[k + 1] + 1;
            continue;
        }
        if t.kind == Kind::Punct && text_of(sql, &t) == "(" || w.as_deref() == Some("AS") {
            in_header = false;
        }
        // ON CLUSTER name (in the header only: `JOIN ... ON cluster = x` stays)
        if in_header
            && w.as_deref() == Some("ON")
            && word(k + 1).as_deref() == Some("CLUSTER")
            && sig.get(k + 2).is_some()
        {
            trim_trailing_space(&mut out);
            i = sig[k + 2] + 1;
            continue;
        }
        // ENGINE = Replicated*MergeTree(...)
        let text = &sql[t.start..t.end];
        if t.kind == Kind::Ident
            && text.starts_with("Replicated")
            && text.ends_with("MergeTree")
            && k >= 2
            && punct(k - 1, "=")
            && word(k - 2).as_deref() == Some("ENGINE")
        {
            out.push_str(&text["Replicated".len()..]);
            unreplicated = true;
            i += 1;
            if punct(k + 1, "(") {
                i = drop_replication_args(sql, &toks, &sig, k + 1, &mut out);
            }
            continue;
        }
        // A database name qualifying an identifier: db.x
        if matches!(t.kind, Kind::Ident | Kind::Quoted) && punct(k + 1, ".") {
            if let Some(new) = ident_value(sql, &t).and_then(|v| rw.databases.get(&v)) {
                out.push_str(&quote_ident(new));
                i += 1;
                continue;
            }
        }
        out.push_str(text);
        i += 1;
    }
    Rewritten {
        sql: out,
        unreplicated,
    }
}

fn text_of<'a>(sql: &'a str, t: &Tok) -> &'a str {
    &sql[t.start..t.end]
}

fn is_kind(toks: &[Tok], sig: &[usize], k: usize, kind: Kind) -> bool {
    sig.get(k).is_some_and(|&i| toks[i].kind == kind)
}

fn trim_trailing_space(out: &mut String) {
    let n = out.trim_end().len();
    out.truncate(n);
}

/// The object's name, renamed or with its database mapped.
fn object_name(sql: &str, toks: &[Tok], a: usize, b: usize, rw: &Rewrite) -> String {
    if let Some((db, name)) = &rw.name {
        return format!("{}.{}", quote_ident(db), quote_ident(name));
    }
    if a == b {
        return sql[toks[a].start..toks[a].end].to_string();
    }
    let db = ident_value(sql, &toks[a]).unwrap_or_default();
    let db = rw.databases.get(&db).cloned().unwrap_or(db);
    let name = ident_value(sql, &toks[b]).unwrap_or_default();
    format!("{}.{}", quote_ident(&db), quote_ident(&name))
}

/// After `Replicated*MergeTree`, at the `(` (position `open` in `sig`):
/// write the arguments without the leading string literals (ZooKeeper
/// path, replica name; at most two). Returns the token index after `)`.
fn drop_replication_args(
    sql: &str,
    toks: &[Tok],
    sig: &[usize],
    open: usize,
    out: &mut String,
) -> usize {
    // The argument list's tokens up to the matching ')'.
    let mut depth = 0;
    let mut close = open;
    for (k, &i) in sig.iter().enumerate().skip(open) {
        match &sql[toks[i].start..toks[i].end] {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    close = k;
                    break;
                }
            }
            _ => {}
        }
    }
    let mut k = open + 1;
    let mut dropped = 0;
    while dropped < 2 && k < close && toks[sig[k]].kind == Kind::Str {
        dropped += 1;
        k += 1;
        if k < close && &sql[toks[sig[k]].start..toks[sig[k]].end] == "," {
            k += 1;
        }
    }
    out.push('(');
    if k < close {
        out.push_str(sql[toks[sig[k]].start..toks[sig[close]].start].trim());
    }
    out.push(')');
    sig[close] + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn old_server_text_is_renamed() {
        let sql = "CREATE TABLE d1.t ( d Date,  s String DEFAULT 'd1.x') ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY d SETTINGS index_granularity = 8192";
        let rw = Rewrite {
            name: None,
            databases: map(&[("d1", "copy")]),
        };
        let out = rewrite_create(sql, &rw);
        assert_eq!(
            out.sql,
            "CREATE TABLE `copy`.`t` ( d Date,  s String DEFAULT 'd1.x') ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY d SETTINGS index_granularity = 8192"
        );
        assert!(!out.unreplicated);
    }

    #[test]
    fn views_get_their_references_mapped() {
        let sql = "CREATE MATERIALIZED VIEW d1.mv TO d1.tgt (`k` UInt64) AS SELECT id % 3 AS k FROM d1.t  GROUP BY k";
        let out = rewrite_create(
            sql,
            &Rewrite {
                name: None,
                databases: map(&[("d1", "n")]),
            },
        );
        assert_eq!(
            out.sql,
            "CREATE MATERIALIZED VIEW `n`.`mv` TO `n`.tgt (`k` UInt64) AS SELECT id % 3 AS k FROM `n`.t  GROUP BY k"
        );
    }

    #[test]
    fn modern_text_loses_uuids_cluster_and_replication() {
        let sql = "CREATE TABLE shop.events UUID '3f1c1c9e-8a1a-4b5e-9d1e-2f4c5b6a7d8e' ON CLUSTER prod\n(\n    `id` UUID,\n    `ts` DateTime64(3) CODEC(Delta, ZSTD(1)),\n    PROJECTION p (SELECT id ORDER BY ts)\n)\nENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/shop/events', '{replica}', ts)\nPARTITION BY toYYYYMM(ts)\nORDER BY id\nTTL toDateTime(ts) + toIntervalDay(30)\nSETTINGS index_granularity = 8192";
        let out = rewrite_create(sql, &Rewrite::default());
        assert!(out.unreplicated);
        assert_eq!(
            out.sql,
            "CREATE TABLE `shop`.`events`\n(\n    `id` UUID,\n    `ts` DateTime64(3) CODEC(Delta, ZSTD(1)),\n    PROJECTION p (SELECT id ORDER BY ts)\n)\nENGINE = ReplacingMergeTree(ts)\nPARTITION BY toYYYYMM(ts)\nORDER BY id\nTTL toDateTime(ts) + toIntervalDay(30)\nSETTINGS index_granularity = 8192"
        );
    }

    #[test]
    fn replicated_engines_without_arguments_and_old_syntax() {
        let out = rewrite_create(
            "CREATE TABLE a.b (x UInt8) ENGINE = ReplicatedMergeTree ORDER BY x",
            &Rewrite::default(),
        );
        assert_eq!(
            out.sql,
            "CREATE TABLE `a`.`b` (x UInt8) ENGINE = MergeTree ORDER BY x"
        );
        let out = rewrite_create(
            "CREATE TABLE a.b (d Date, x UInt8) ENGINE = ReplicatedMergeTree('/p', 'r1', d, x, 8192)",
            &Rewrite::default(),
        );
        assert_eq!(
            out.sql,
            "CREATE TABLE `a`.`b` (d Date, x UInt8) ENGINE = MergeTree(d, x, 8192)"
        );
    }

    #[test]
    fn materialized_views_lose_their_inner_uuid_and_can_be_renamed() {
        let sql = "CREATE MATERIALIZED VIEW db.mv UUID 'aaaaaaaa-0000-0000-0000-000000000001' TO INNER UUID 'aaaaaaaa-0000-0000-0000-000000000002'\n(\n    `k` UInt8\n)\nENGINE = SummingMergeTree\nORDER BY k\nAS SELECT k FROM db.src";
        let out = rewrite_create(
            sql,
            &Rewrite {
                name: Some(("other".into(), "mv2".into())),
                databases: map(&[("db", "other")]),
            },
        );
        assert_eq!(
            out.sql,
            "CREATE MATERIALIZED VIEW `other`.`mv2`\n(\n    `k` UInt8\n)\nENGINE = SummingMergeTree\nORDER BY k\nAS SELECT k FROM `other`.src"
        );
    }

    #[test]
    fn quoted_names_and_strings_survive() {
        let sql = "CREATE VIEW `my db`.`v` AS SELECT 'my db.t' AS s, `my db`.t.x FROM `my db`.t -- my db.t\n";
        let out = rewrite_create(
            sql,
            &Rewrite {
                name: None,
                databases: map(&[("my db", "z")]),
            },
        );
        assert_eq!(
            out.sql,
            "CREATE VIEW `z`.`v` AS SELECT 'my db.t' AS s, `z`.t.x FROM `z`.t -- my db.t\n"
        );
    }
}
