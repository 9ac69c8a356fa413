//! Static credentials from the AWS shared credentials file.
//!
//! `object_store` reads the AWS environment variables, web identity and
//! instance metadata but not profile files; this reads the profile named by
//! `AWS_PROFILE` (default `default`) from `AWS_SHARED_CREDENTIALS_FILE`
//! (default `~/.aws/credentials`): `aws_access_key_id`,
//! `aws_secret_access_key` and optionally `aws_session_token`.

use std::path::PathBuf;

/// Keys of one profile.
pub(crate) struct ProfileCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// The profile's credentials, or `None` when there is no file or profile.
pub(crate) fn from_profile_file() -> Option<ProfileCredentials> {
    let path = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws/credentials")))?;
    let text = std::fs::read_to_string(path).ok()?;
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    parse(&text, &profile)
}

fn parse(text: &str, profile: &str) -> Option<ProfileCredentials> {
    let (mut id, mut secret, mut token) = (None, None, None);
    let mut in_profile = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(ProfileCredentials {
        access_key_id: id?,
        secret_access_key: secret?,
        session_token: token,
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_the_named_profile_only() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[other]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        let d = parse(text, "default").unwrap();
        assert_eq!(
            (d.access_key_id.as_str(), d.secret_access_key.as_str()),
            ("A", "B")
        );
        assert!(d.session_token.is_none());
        let o = parse(text, "other").unwrap();
        assert_eq!(
            (o.access_key_id.as_str(), o.session_token.as_deref()),
            ("C", Some("T"))
        );
        assert!(parse(text, "missing").is_none());
    }
}
