//! libpq's password file for the in-process client, so a target that works
//! with `psql` because of `~/.pgpass` works the same way here.
//!
//! Which file: the URL's `passfile` parameter, else `PGPASSFILE`, else
//! `~/.pgpass` (section "The Password File" of the libpq documentation).
//! Lines are `hostname:port:database:username:password`; `*` matches anything
//! in the first four fields, `\` escapes `:` and `\`, lines starting with `#`
//! are comments, the first matching line wins. A host that is empty or the
//! default socket directory matches `localhost`. As libpq does, a file that is
//! not a plain file or that the group or others may read is ignored with a
//! warning on stderr.

use std::path::{Path, PathBuf};

/// What a line must match: the connection's host, port, database and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassKey {
    /// Host name, address or socket directory (`localhost` for the default socket).
    pub host: String,
    /// Port, as text.
    pub port: String,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
}

/// The password file libpq would read: `passfile` (from the URL), else
/// `PGPASSFILE`, else `$HOME/.pgpass`.
pub fn passfile_path(passfile: Option<&str>) -> Option<PathBuf> {
    if let Some(p) = passfile.filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".pgpass"))
}

/// The password for `key` from the file at `path`, if the file exists, is
/// usable (a plain file, mode 0600 or stricter) and has a matching line.
pub fn lookup(path: &Path, key: &PassKey) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !usable(path, &meta) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find_password(&text, key)
}

/// libpq's checks on the file, with its warnings.
fn usable(path: &Path, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    if !meta.is_file() {
        eprintln!(
            "warning: password file \"{}\" is not a plain file",
            path.display()
        );
        return false;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return false;
    }
    true
}

/// The password of the first line of `text` that matches `key`.
pub fn find_password(text: &str, key: &PassKey) -> Option<String> {
    text.lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| line_password(line, key))
}

/// The password of `line` if its four first fields match `key`.
fn line_password(line: &str, key: &PassKey) -> Option<String> {
    let mut rest = line;
    for want in [&key.host, &key.port, &key.database, &key.user] {
        rest = field_matches(rest, want)?;
    }
    Some(unescape_until_colon(rest))
}

/// If the field at the start of `s` matches `want` (or is `*`), what follows its `:`.
fn field_matches<'a>(s: &'a str, want: &str) -> Option<&'a str> {
    if let Some(rest) = s.strip_prefix("*:") {
        return Some(rest);
    }
    let mut chars = s.char_indices();
    let mut want = want.chars();
    while let Some((i, c)) = chars.next() {
        let c = match c {
            ':' => return want.next().is_none().then(|| &s[i + 1..]),
            '\\' => chars.next().map(|(_, n)| n)?,
            c => c,
        };
        if want.next() != Some(c) {
            return None;
        }
    }
    None
}

/// The rest of a line up to an unescaped `:`, with `\` escapes removed.
fn unescape_until_colon(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str, port: &str, db: &str, user: &str) -> PassKey {
        PassKey {
            host: host.into(),
            port: port.into(),
            database: db.into(),
            user: user.into(),
        }
    }

    #[test]
    fn first_matching_line_wins_with_wildcards_and_escapes() {
        let file = "# comment\n\
                    db.example:5432:app:alice:first\n\
                    *:5433:*:alice:wild\n\
                    h\\:x:1:d:u:esc\\:aped\\\\pw\n\
                    *:*:*:*:fallback:ignored\n";
        let f = |k| find_password(file, &k);
        assert_eq!(
            f(key("db.example", "5432", "app", "alice")).as_deref(),
            Some("first")
        );
        assert_eq!(
            f(key("other", "5433", "x", "alice")).as_deref(),
            Some("wild")
        );
        assert_eq!(
            f(key("h:x", "1", "d", "u")).as_deref(),
            Some("esc:aped\\pw")
        );
        assert_eq!(
            f(key("db.example", "5432", "app", "bob")).as_deref(),
            Some("fallback")
        );
        assert_eq!(
            find_password("a:1:d:u:pw\n", &key("a", "1", "d", "uu")),
            None
        );
        assert_eq!(find_password("a:1:d:u\n", &key("a", "1", "d", "u")), None);
        // A literal '*' that is only part of a field is not a wildcard.
        assert_eq!(
            find_password("a*:1:d:u:pw\n", &key("ab", "1", "d", "u")),
            None
        );
    }

    #[test]
    fn a_file_others_may_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        let k = key("h", "1", "d", "u");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&path, &k), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, &k).as_deref(), Some("pw"));
        assert_eq!(
            lookup(dir.path(), &k),
            None,
            "a directory is not a password file"
        );
    }

    #[test]
    fn passfile_parameter_comes_first() {
        assert_eq!(passfile_path(Some("/x/y")), Some(PathBuf::from("/x/y")));
    }
}
