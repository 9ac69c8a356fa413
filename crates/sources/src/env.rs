//! Environment capture and secret redaction.
//!
//! Variables (and `KEY=value` lines of `.env` files) whose name looks
//! secret are stored as `NAME=<redacted>` unless redaction is turned off.
//! A name looks secret when it contains one of [`DEFAULT_SECRET_MARKERS`]
//! (case-insensitive) or a configured extra marker; values that are URLs
//! with a password (`scheme://user:pass@host`) have the password redacted
//! whatever the name.

/// Name fragments that mark a secret.
pub const DEFAULT_SECRET_MARKERS: &[&str] = &[
    "KEY",
    "SECRET",
    "TOKEN",
    "PASSWORD",
    "PASSWD",
    "PASS",
    "PWD",
    "CREDENTIAL",
    "PRIVATE",
    "AUTH",
    "SESSION",
    "COOKIE",
    "SALT",
    "SIGNATURE",
    "CERT",
    "DSN",
];

/// The replacement text.
pub const REDACTED: &str = "<redacted>";

/// How to redact.
#[derive(Debug, Clone)]
pub struct Redactor {
    markers: Vec<String>,
    allow: Vec<String>,
    enabled: bool,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(true, &[], &[])
    }
}

impl Redactor {
    /// A redactor; `extra` adds markers, `allow` names variables never redacted.
    pub fn new(enabled: bool, extra: &[String], allow: &[String]) -> Self {
        let mut markers: Vec<String> = DEFAULT_SECRET_MARKERS
            .iter()
            .map(|s| s.to_string())
            .collect();
        markers.extend(extra.iter().map(|s| s.to_ascii_uppercase()));
        Redactor {
            markers,
            allow: allow.iter().map(|s| s.to_ascii_uppercase()).collect(),
            enabled,
        }
    }

    /// Whether redaction is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether a variable name looks secret.
    pub fn is_secret_name(&self, name: &str) -> bool {
        let up = name.to_ascii_uppercase();
        !self.allow.contains(&up) && self.markers.iter().any(|m| up.contains(m.as_str()))
    }

    /// The value to store for `name=value`; `None` when unchanged.
    pub fn redact_value(&self, name: &str, value: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        if self.is_secret_name(name) {
            return Some(REDACTED.into());
        }
        redact_url_password(value)
    }

    /// Redact `KEY=value` lines of an env file; returns the text and how many values were redacted.
    pub fn redact_env_file(&self, text: &str) -> (String, usize) {
        let mut count = 0;
        let mut state = EnvLines::default();
        let mut out = String::with_capacity(text.len());
        for line in text.split_inclusive('\n') {
            match self.redact_next_line(&mut state, line) {
                LineOutcome::Keep => out.push_str(line),
                LineOutcome::Replace(red) => {
                    count += 1;
                    out.push_str(&red);
                }
                LineOutcome::Drop => {}
            }
        }
        (out, count)
    }

    /// What to store for the next `line` of an env file (with its line
    /// ending, if any), given what the lines before it opened in `state`.
    /// A redacted value in quotes that spans lines (a PEM key in
    /// `KEY="-----BEGIN ...`) is stored as one `NAME=<redacted>` line and its
    /// continuation lines, up to the closing quote, are dropped: judging each
    /// line alone would store the key's body in clear.
    pub fn redact_next_line(&self, state: &mut EnvLines, line: &str) -> LineOutcome {
        if let Some(quote) = state.dropping {
            if closes_quote(line, quote) {
                state.dropping = None;
            }
            return LineOutcome::Drop;
        }
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let trimmed = body.trim_start();
        let decl = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((name, value)) = decl.split_once('=') else {
            return LineOutcome::Keep;
        };
        if trimmed.starts_with('#') || !is_identifier(name.trim()) {
            return LineOutcome::Keep;
        }
        let value = value.trim_start();
        let Some(red) = self.redact_value(name.trim(), value.trim().trim_matches(['"', '\'']))
        else {
            return LineOutcome::Keep;
        };
        if let Some(quote) = opens_quote(value) {
            state.dropping = Some(quote);
        }
        let prefix_len = body.len() - decl.len();
        LineOutcome::Replace(format!("{}{name}={red}{ending}", &body[..prefix_len]))
    }

    /// Capture `vars` as an env file (sorted), redacted; returns text and count redacted.
    pub fn capture(&self, vars: impl IntoIterator<Item = (String, String)>) -> (String, usize) {
        let mut vars: Vec<_> = vars.into_iter().collect();
        vars.sort();
        let mut count = 0;
        let mut out = String::new();
        for (k, v) in vars {
            let v = match self.redact_value(&k, &v) {
                Some(r) => {
                    count += 1;
                    r
                }
                None => v,
            };
            out.push_str(&k);
            out.push('=');
            out.push_str(&shell_quote(&v));
            out.push('\n');
        }
        (out, count)
    }
}

/// What [`Redactor::redact_next_line`] remembers between lines.
#[derive(Debug, Clone, Default)]
pub struct EnvLines {
    /// Inside a redacted quoted value spanning lines: its quote character.
    dropping: Option<char>,
}

/// What to store for one line of an env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineOutcome {
    /// The line as it is.
    Keep,
    /// This text instead (a value redacted).
    Replace(String),
    /// Nothing: a continuation line of a redacted multi-line value.
    Drop,
}

/// The quote a value opens and does not close on its line (`"` or `'`).
fn opens_quote(value: &str) -> Option<char> {
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    (!closes_quote(&value[1..], quote)).then_some(quote)
}

/// Whether `text` holds the closing `quote` (for `"`, one not escaped by a
/// backslash).
fn closes_quote(text: &str, quote: char) -> bool {
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

/// Whether a file name is an environment file (`.env`, `.env.*`, `*.env`).
pub fn is_env_file(name: &str) -> bool {
    name == ".env" || name.starts_with(".env.") || name.ends_with(".env")
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

fn shell_quote(v: &str) -> String {
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:@%+,=<>".contains(&b))
    {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

/// `scheme://user:pass@host/...` -> `scheme://user:<redacted>@host/...`.
pub(crate) fn redact_url_password(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    let at = rest.find('@')?;
    let userinfo = &rest[..at];
    if rest[..at].contains('/') {
        return None;
    }
    let (user, _) = userinfo.split_once(':')?;
    Some(format!("{scheme}://{user}:{REDACTED}{}", &rest[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let r = Redactor::default();
        let (text, n) = r.redact_env_file(
            "# comment\nAPP_NAME=demo\nSTRIPE_SECRET_KEY=sk_live_1\nexport DB_PASSWORD=\"hunter2\"\nDATABASE_URL=postgres://app:pw@db:5432/x\nPORT=8080\n",
        );
        assert_eq!(
            text,
            "# comment\nAPP_NAME=demo\nSTRIPE_SECRET_KEY=<redacted>\nexport DB_PASSWORD=<redacted>\nDATABASE_URL=postgres://app:<redacted>@db:5432/x\nPORT=8080\n"
        );
        assert_eq!(n, 3);
        assert!(!text.contains("hunter2") && !text.contains("sk_live"));
    }

    #[test]
    fn redaction_can_be_turned_off_or_tuned() {
        let off = Redactor::new(false, &[], &[]);
        assert_eq!(off.redact_env_file("API_TOKEN=x\n").0, "API_TOKEN=x\n");
        let tuned = Redactor::new(true, &["INTERNAL".into()], &["PUBLIC_KEY".into()]);
        assert_eq!(
            tuned.redact_env_file("PUBLIC_KEY=a\nINTERNAL_ID=b\n").0,
            "PUBLIC_KEY=a\nINTERNAL_ID=<redacted>\n"
        );
        let (cap, n) = Redactor::default().capture([
            ("HOME".into(), "/root".into()),
            ("GH_TOKEN".into(), "t".into()),
        ]);
        assert_eq!((cap.as_str(), n), ("GH_TOKEN=<redacted>\nHOME=/root\n", 1));
        assert!(
            is_env_file(".env")
                && is_env_file(".env.local")
                && is_env_file("prod.env")
                && !is_env_file("env.rs")
        );
    }

    #[test]
    fn a_secret_spanning_lines_in_quotes_is_redacted_whole() {
        let r = Redactor::default();
        let text = "A=1\nPRIVATE_KEY=\"-----BEGIN KEY-----\nMIIEvQIBADANBg\nkqhkiG9w0B\\\"x\n-----END KEY-----\"\nB=2\nNOTE='multi\nline'\nTOKEN='t\nu' \nC=3\n";
        let (out, n) = r.redact_env_file(text);
        assert_eq!(
            out,
            "A=1\nPRIVATE_KEY=<redacted>\nB=2\nNOTE='multi\nline'\nTOKEN=<redacted>\nC=3\n"
        );
        assert_eq!(n, 2);
        // A one-line quoted secret does not swallow the lines after it.
        let (out, _) = r.redact_env_file("API_KEY=\"abc\"\nD=4\nSECRET='x'\nE=5\n");
        assert_eq!(out, "API_KEY=<redacted>\nD=4\nSECRET=<redacted>\nE=5\n");
    }
}
