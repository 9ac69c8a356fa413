//! Facts about a PostgreSQL data directory that a physical backup needs,
//! as pure functions: which entries pg_basebackup leaves out
//! ([`exclusion`]), which files are relation files whose pages carry
//! checksums ([`relation_segment`]), the page checksum itself
//! ([`page_checksum`], PostgreSQL's `pg_checksum_page`), page header fields,
//! LSN parsing and WAL file names ([`wal_file_name`]).
//!
//! The rules follow `src/backend/backup/basebackup.c` (PostgreSQL 15):
//! the contents of `pg_wal`, `pg_replslot`, `pg_stat_tmp`, `pg_dynshmem`,
//! `pg_notify`, `pg_serial`, `pg_snapshots` and `pg_subtrans` are left out
//! (the directories are kept, empty); `postmaster.pid`, `postmaster.opts`,
//! `pg_internal.init`, `backup_label`, `tablespace_map`, `backup_manifest`
//! and the `.tmp` files of `postgresql.auto.conf` and `current_logfiles`
//! are left out; so are temporary files and directories (`pgsql_tmp*`) and
//! temporary relations (`t<backend>_<relfilenode>`). Unlogged relations
//! (those with an `_init` fork) keep only their init fork
//! ([`unlogged_relations`]).

use std::collections::HashSet;

/// Page size.
pub const BLCKSZ: usize = 8192;
/// Blocks per relation segment file (1 GiB).
pub const RELSEG_SIZE: u64 = 131_072;
/// WAL segment size PostgreSQL uses unless initdb was told otherwise.
pub const DEFAULT_WAL_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// What a backup does with an entry of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    /// Stored.
    Keep,
    /// A directory stored empty (its contents are left out).
    KeepEmpty,
    /// Not stored.
    Skip,
}

/// Directories whose contents pg_basebackup leaves out (relative to PGDATA).
const EMPTY_DIRS: &[&str] = &[
    "pg_wal",
    "pg_replslot",
    "pg_stat_tmp",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

/// Files pg_basebackup leaves out wherever they are.
const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "pg_internal.init",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
];

/// What to do with the entry at `rel` (its path relative to PGDATA, `/`
/// separated; for a tablespace, relative to PGDATA as `pg_tblspc/<oid>/...`).
pub fn exclusion(rel: &str, is_dir: bool) -> Exclusion {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if name.starts_with("pgsql_tmp") {
        return Exclusion::Skip;
    }
    if is_dir {
        return if EMPTY_DIRS.contains(&rel) {
            Exclusion::KeepEmpty
        } else {
            Exclusion::Keep
        };
    }
    if SKIP_FILES.contains(&name) || is_temp_relation(name) {
        return Exclusion::Skip;
    }
    Exclusion::Keep
}

/// `t<backend>_<relfilenode>[_fork][.seg]`: a temporary relation.
fn is_temp_relation(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('t') else {
        return false;
    };
    let Some((backend, file)) = rest.split_once('_') else {
        return false;
    };
    !backend.is_empty()
        && backend.bytes().all(|b| b.is_ascii_digit())
        && relation_parts(file).is_some()
}

/// `(relfilenode, fork, segment)` of a relation file name such as `16384`,
/// `16384_fsm`, `16384.2` or `16384_vm.1`.
fn relation_parts(name: &str) -> Option<(&str, &str, u64)> {
    let (base, seg) = match name.split_once('.') {
        Some((b, s)) if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) => {
            (b, s.parse().ok()?)
        }
        Some(_) => return None,
        None => (name, 0),
    };
    let (node, fork) = match base.split_once('_') {
        Some((n, f)) if matches!(f, "fsm" | "vm" | "init") => (n, f),
        Some(_) => return None,
        None => (base, ""),
    };
    (!node.is_empty() && node.bytes().all(|c| c.is_ascii_digit())).then_some((node, fork, seg))
}

/// The segment number of a relation file whose pages carry checksums (a
/// file named like a relation in `global/`, `base/<db>/` or a tablespace's
/// database directory), or `None` for any other file.
pub fn relation_segment(rel: &str) -> Option<u64> {
    let parts: Vec<&str> = rel.split('/').collect();
    let in_relation_dir = match parts.as_slice() {
        ["global", _] => true,
        ["base", db, _] => db.bytes().all(|c| c.is_ascii_digit()),
        ["pg_tblspc", _, _, db, _] => db.bytes().all(|c| c.is_ascii_digit()),
        _ => false,
    };
    if !in_relation_dir {
        return None;
    }
    relation_parts(parts.last()?).map(|(_, _, seg)| seg)
}

/// The relfilenodes of unlogged relations among a database directory's
/// file names (those with an `_init` fork).
pub fn unlogged_relations<'a>(names: impl IntoIterator<Item = &'a str>) -> HashSet<String> {
    names
        .into_iter()
        .filter_map(relation_parts)
        .filter(|(_, fork, _)| *fork == "init")
        .map(|(node, _, _)| node.to_string())
        .collect()
}

/// Whether the file `name` in a database directory belongs to an unlogged
/// relation of `unlogged` and is not its init fork (left out: the server
/// resets unlogged relations from their init forks after recovery).
pub fn is_unlogged_data(name: &str, unlogged: &HashSet<String>) -> bool {
    match relation_parts(name) {
        Some((node, fork, _)) => fork != "init" && unlogged.contains(node),
        None => false,
    }
}

const N_SUMS: usize = 32;
const FNV_PRIME: u32 = 16_777_619;
const CHECKSUM_BASE_OFFSETS: [u32; N_SUMS] = [
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
];

fn checksum_comp(sum: &mut u32, value: u32) {
    let tmp = *sum ^ value;
    *sum = tmp.wrapping_mul(FNV_PRIME) ^ (tmp >> 17);
}

/// PostgreSQL's `pg_checksum_page` of an 8 KiB page (little-endian
/// platforms) at absolute block number `blkno`: the page with its
/// `pd_checksum` taken as 0.
pub fn page_checksum(page: &[u8], blkno: u64) -> u16 {
    assert_eq!(page.len(), BLCKSZ, "a page is {BLCKSZ} bytes");
    let mut sums = CHECKSUM_BASE_OFFSETS;
    for (w, word) in page.chunks_exact(4).enumerate() {
        let mut v = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if w == 2 {
            // pd_checksum is the low half of the third word.
            v &= 0xFFFF_0000;
        }
        checksum_comp(&mut sums[w % N_SUMS], v);
    }
    for _ in 0..2 {
        for s in sums.iter_mut() {
            checksum_comp(s, 0);
        }
    }
    let result = sums.iter().fold(0u32, |a, s| a ^ s) ^ (blkno as u32);
    ((result % 65535) + 1) as u16
}

/// The checksum stored in a page header (`pd_checksum`).
pub fn stored_checksum(page: &[u8]) -> u16 {
    u16::from_le_bytes([page[8], page[9]])
}

/// The page's LSN (`pd_lsn`).
pub fn page_lsn(page: &[u8]) -> u64 {
    let hi = u32::from_le_bytes([page[0], page[1], page[2], page[3]]) as u64;
    let lo = u32::from_le_bytes([page[4], page[5], page[6], page[7]]) as u64;
    (hi << 32) | lo
}

/// Whether the page is new (never initialised: `pd_upper == 0`), which
/// carries no checksum.
pub fn page_is_new(page: &[u8]) -> bool {
    u16::from_le_bytes([page[14], page[15]]) == 0
}

/// Parse an LSN written as PostgreSQL prints it (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Format an LSN as PostgreSQL prints it.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The WAL file name of the segment holding `lsn` on `timeline`.
pub fn wal_file_name(timeline: u32, lsn: u64, segment_size: u64) -> String {
    let segno = lsn / segment_size;
    let per_id = 0x1_0000_0000 / segment_size;
    format!("{timeline:08X}{:08X}{:08X}", segno / per_id, segno % per_id)
}

/// The WAL file names from the segment holding `start` to the one holding
/// `stop`, in order.
pub fn wal_file_names(timeline: u32, start: u64, stop: u64, segment_size: u64) -> Vec<String> {
    (start / segment_size..=stop / segment_size)
        .map(|segno| wal_file_name(timeline, segno * segment_size, segment_size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusions_follow_pg_basebackup() {
        assert_eq!(exclusion("pg_wal", true), Exclusion::KeepEmpty);
        assert_eq!(exclusion("pg_subtrans", true), Exclusion::KeepEmpty);
        assert_eq!(exclusion("base/1/pg_wal", true), Exclusion::Keep);
        assert_eq!(exclusion("postmaster.pid", false), Exclusion::Skip);
        assert_eq!(exclusion("global/pg_internal.init", false), Exclusion::Skip);
        assert_eq!(exclusion("base/pgsql_tmp", true), Exclusion::Skip);
        assert_eq!(exclusion("base/5/t3_16384", false), Exclusion::Skip);
        assert_eq!(exclusion("base/5/t3_16384_fsm.1", false), Exclusion::Skip);
        assert_eq!(exclusion("base/5/16384", false), Exclusion::Keep);
        assert_eq!(exclusion("PG_VERSION", false), Exclusion::Keep);
    }

    #[test]
    fn relation_files_are_recognised_with_their_segment() {
        assert_eq!(relation_segment("base/5/16384"), Some(0));
        assert_eq!(relation_segment("base/5/16384.3"), Some(3));
        assert_eq!(relation_segment("base/5/16384_vm"), Some(0));
        assert_eq!(relation_segment("global/1262"), Some(0));
        assert_eq!(relation_segment("global/pg_control"), None);
        assert_eq!(relation_segment("base/5/pg_filenode.map"), None);
        assert_eq!(relation_segment("base/5/PG_VERSION"), None);
        assert_eq!(
            relation_segment("pg_tblspc/16400/PG_15_202209061/5/16401"),
            Some(0)
        );
        assert_eq!(relation_segment("pg_xact/0000"), None);
    }

    #[test]
    fn unlogged_relations_keep_only_their_init_fork() {
        let names = ["16384", "16384_init", "16384_fsm", "16390", "16390_vm"];
        let unlogged = unlogged_relations(names);
        assert!(is_unlogged_data("16384", &unlogged));
        assert!(is_unlogged_data("16384_fsm", &unlogged));
        assert!(is_unlogged_data("16384.1", &unlogged));
        assert!(!is_unlogged_data("16384_init", &unlogged));
        assert!(!is_unlogged_data("16390", &unlogged));
    }

    #[test]
    fn lsns_and_wal_names() {
        let lsn = parse_lsn("16/B374D848").unwrap();
        assert_eq!(lsn, 0x16_B374_D848);
        assert_eq!(format_lsn(lsn), "16/B374D848");
        assert_eq!(
            wal_file_name(1, lsn, DEFAULT_WAL_SEGMENT_SIZE),
            "0000000100000016000000B3"
        );
        let names = wal_file_names(1, 0x0_02FF_FFFF, 0x1_0100_0000, DEFAULT_WAL_SEGMENT_SIZE);
        assert_eq!(names.first().unwrap(), "000000010000000000000002");
        assert_eq!(names.last().unwrap(), "000000010000000100000001");
        assert_eq!(names.len(), 256);
    }

    /// A page with a checksum set by PostgreSQL's algorithm verifies, and
    /// changing one byte of it or its block number breaks it.
    #[test]
    fn page_checksums_change_with_content_and_block() {
        let mut page = vec![0u8; BLCKSZ];
        page[14] = 0x20; // pd_upper
        page[100] = 7;
        let sum = page_checksum(&page, 3);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(page_checksum(&page, 3), stored_checksum(&page));
        assert_ne!(page_checksum(&page, 4), sum);
        page[200] = 1;
        assert_ne!(page_checksum(&page, 3), sum);
    }
}
