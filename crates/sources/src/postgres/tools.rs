//! Finding PostgreSQL client tools whose version fits the server.
//!
//! pg_dump refuses to dump a server newer than itself, and reads older servers
//! fine, so for a server of major N we want tools of major N (exact match
//! preferred, it produces the most faithful archive), else the oldest newer
//! major available. Search order: the configured `bin_dir`, then Debian's
//! `/usr/lib/postgresql/<N>/bin`, then `/usr/local/pgsql/bin`, then `PATH`.

use std::path::{Path, PathBuf};

use super::error::{PgError, Result};

/// Paths to one consistent set of client tools (all from the same directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTools {
    /// Directory the tools were found in.
    pub bin_dir: PathBuf,
    /// Major version of `pg_dump` (e.g. 15; 9 for any 9.x).
    pub major: u32,
    /// Full version string, e.g. `15.18`.
    pub version: String,
    /// `pg_dump`.
    pub pg_dump: PathBuf,
    /// `pg_restore`.
    pub pg_restore: PathBuf,
    /// `pg_dumpall`.
    pub pg_dumpall: PathBuf,
    /// `psql`.
    pub psql: PathBuf,
}

impl ClientTools {
    /// Finds tools able to dump and restore a server of major version `server_major`.
    ///
    /// A configured `bin_dir` is used strictly: tools missing there, or too
    /// old for the server, are an error naming the directory, never a silent
    /// fall-back to other installed versions.
    pub fn find(server_major: u32, configured_bin_dir: Option<&Path>) -> Result<Self> {
        if let Some(dir) = configured_bin_dir {
            let t = Self::from_dir(dir).map_err(|_| PgError::ToolsNotInDir {
                bin_dir: dir.to_path_buf(),
                server_major,
            })?;
            if t.major < server_major {
                return Err(PgError::ToolsTooOld {
                    tool_major: t.major,
                    server_major,
                    bin_dir: t.bin_dir,
                });
            }
            return Ok(t);
        }
        let candidates = candidate_dirs(None, Some(server_major));
        let found = probe_all(&candidates);
        if let Some(t) = found.iter().find(|t| t.major == server_major) {
            return Ok(t.clone());
        }
        if let Some(t) = found
            .iter()
            .filter(|t| t.major > server_major)
            .min_by_key(|t| t.major)
        {
            return Ok(t.clone());
        }
        match found.iter().max_by_key(|t| t.major) {
            Some(newest) => Err(PgError::ToolsTooOld {
                tool_major: newest.major,
                server_major,
                bin_dir: newest.bin_dir.clone(),
            }),
            None => Err(PgError::ToolsNotFound {
                searched: candidates,
            }),
        }
    }

    /// The newest tools available (for work without a known server, e.g. reading
    /// an archive: newer pg_restore reads every older archive format).
    /// A configured `bin_dir` is used strictly, as in [`ClientTools::find`].
    pub fn any(configured_bin_dir: Option<&Path>) -> Result<Self> {
        if let Some(dir) = configured_bin_dir {
            return Self::from_dir(dir);
        }
        let candidates = candidate_dirs(None, None);
        let found = probe_all(&candidates);
        // First of the newest, in search order (a Debian directory holds initdb and
        // pg_ctl too; the /usr/bin wrappers do not).
        let mut best: Option<ClientTools> = None;
        for t in found {
            if best.as_ref().is_none_or(|b| t.major > b.major) {
                best = Some(t);
            }
        }
        best.ok_or(PgError::ToolsNotFound {
            searched: candidates,
        })
    }

    /// Tools from exactly this directory (errors if pg_dump is missing there).
    pub fn from_dir(bin_dir: &Path) -> Result<Self> {
        probe(bin_dir).ok_or_else(|| PgError::ToolsNotFound {
            searched: vec![bin_dir.to_path_buf()],
        })
    }

    /// Path of another program in the same directory (e.g. `initdb`, `pg_ctl`).
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Parses the major version from `pg_dump --version` output such as
/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` or `... 9.6.24`.
/// Returns `(major, version)`.
pub fn parse_tool_version(output: &str) -> Option<(u32, String)> {
    let line = output.lines().next()?;
    let rest = line.split(")").nth(1).unwrap_or(line);
    let version = rest
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let digits: String = version
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let major = digits.split('.').next()?.parse().ok()?;
    Some((major, version.to_string()))
}

/// Directories to search, in order, without duplicates.
fn candidate_dirs(configured: Option<&Path>, server_major: Option<u32>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(c) = configured {
        dirs.push(c.to_path_buf());
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((n, e.path().join("bin")))
        })
        .collect();
    // Exact match first, then ascending newer, then (only useful for error messages) older.
    debian.sort_by_key(|(n, _)| match server_major {
        Some(s) if *n == s => (0, 0),
        Some(s) if *n > s => (1, *n),
        Some(_) => (2, u32::MAX - *n),
        None => (1, u32::MAX - *n),
    });
    dirs.extend(debian.into_iter().map(|(_, p)| p));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

fn probe_all(dirs: &[PathBuf]) -> Vec<ClientTools> {
    dirs.iter().filter_map(|d| probe(d)).collect()
}

fn probe(dir: &Path) -> Option<ClientTools> {
    let pg_dump = dir.join("pg_dump");
    if !pg_dump.is_file() {
        return None;
    }
    let out = crate::process::command(&pg_dump)
        .arg("--version")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let (major, version) = parse_tool_version(&String::from_utf8_lossy(&out.stdout))?;
    let tools = ClientTools {
        bin_dir: dir.to_path_buf(),
        major,
        version,
        pg_dump,
        pg_restore: dir.join("pg_restore"),
        pg_dumpall: dir.join("pg_dumpall"),
        psql: dir.join("psql"),
    };
    let complete = [&tools.pg_restore, &tools.pg_dumpall, &tools.psql]
        .iter()
        .all(|p| p.is_file());
    complete.then_some(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some((15, "15.18".to_string()))
        );
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 9.6.24"),
            Some((9, "9.6.24".to_string()))
        );
        assert_eq!(
            parse_tool_version("pg_dump (PostgreSQL) 17beta1"),
            Some((17, "17beta1".to_string()))
        );
        assert_eq!(parse_tool_version("garbage"), None);
    }
}
