//! Trees: directory listings stored as blobs (JSON), one per directory.
//!
//! Every snapshot points at a root tree, whatever its source: a files
//! backup's directories, or a PostgreSQL dump's few files (the archive,
//! globals). Unchanged directories produce identical trees and deduplicate.

use crate::id::Id;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A directory: its entries sorted by name.
///
/// A large directory is stored as a chain of tree blobs of at most
/// [`DEFAULT_TREE_PART_NODES`] entries each (FORMAT.md §9): every part but
/// the last names the next in `next`. [`crate::Repository::load_tree`]
/// follows the chain and returns the whole directory with `next` empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Tree {
    /// Entries, sorted by name bytes.
    pub nodes: Vec<Node>,
    /// The tree blob holding the entries that follow (split directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<Id>,
}

/// Entries per tree blob before a directory is split into a chain of parts
/// (about 2.5 MB of JSON, well under a pack).
pub const DEFAULT_TREE_PART_NODES: usize = 10_000;

/// What a node is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file (or stream) with content blobs.
    File,
    /// Directory with a subtree.
    Dir,
    /// Symbolic link with a target.
    Symlink,
}

/// One entry of a tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Name; names that are not UTF-8 are stored in `name_hex` and this is lossy.
    pub name: String,
    /// The raw name bytes in hex, only when the name is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_hex: Option<String>,
    /// File, dir or symlink.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits (and setuid/setgid/sticky), as `st_mode & 0o7777`.
    pub mode: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Inode change time, ns (change detection only, not restored).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ctime_ns: i64,
    /// Inode number (change detection; with `dev`, the hardlink group).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub inode: u64,
    /// Device of the inode (files with `links` > 1 only): `(dev, inode)`
    /// names the hardlink group within the snapshot.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub dev: u64,
    /// Hard link count at backup (files, only when > 1): restore links the
    /// group's other paths to the first one it writes.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub links: u64,
    /// The file had holes at backup (fewer blocks allocated than its size):
    /// restore skips zero blocks instead of writing them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sparse: bool,
    /// Extended attributes (including POSIX ACLs, `system.posix_acl_*`):
    /// name -> value bytes in hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
    /// Content blobs in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Subtree (directories).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Link target (symlinks), lossy when not UTF-8 (see `target_hex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Raw link target bytes in hex, only when not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hex: Option<String>,
}

impl Node {
    /// A node with the given name and kind and zeroed metadata.
    pub fn new(name_bytes: &[u8], kind: NodeKind) -> Self {
        let (name, name_hex) = encode_bytes(name_bytes);
        Node {
            name,
            name_hex,
            kind,
            mode: if kind == NodeKind::Dir { 0o755 } else { 0o644 },
            mtime_ns: 0,
            uid: 0,
            gid: 0,
            size: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            links: 0,
            sparse: false,
            xattrs: BTreeMap::new(),
            content: Vec::new(),
            subtree: None,
            target: None,
            target_hex: None,
        }
    }

    /// The exact name bytes.
    pub fn name_bytes(&self) -> Vec<u8> {
        decode_bytes(&self.name, self.name_hex.as_deref())
    }

    /// Compare this node's exact name bytes with `name`, without
    /// allocating (a name that is not UTF-8 is compared through its hex).
    pub fn cmp_name(&self, name: &[u8]) -> std::cmp::Ordering {
        match self.name_hex.as_deref().map(HexBytes::new) {
            Some(Some(raw)) => raw.cmp(name.iter().copied()),
            _ => self.name.as_bytes().cmp(name),
        }
    }

    /// Compare two nodes by their exact name bytes (the stored order).
    pub fn cmp_by_name(&self, other: &Node) -> std::cmp::Ordering {
        match other.name_hex.as_deref().map(HexBytes::new) {
            Some(Some(raw)) => match self.name_hex.as_deref().map(HexBytes::new) {
                Some(Some(mine)) => mine.cmp(raw),
                _ => self.name.as_bytes().iter().copied().cmp(raw),
            },
            _ => self.cmp_name(other.name.as_bytes()),
        }
    }

    /// Set the symlink target.
    pub fn set_target(&mut self, target: &[u8]) {
        let (t, hex) = encode_bytes(target);
        self.target = Some(t);
        self.target_hex = hex;
    }

    /// Set the extended attributes (values stored in hex).
    pub fn set_xattrs(&mut self, attrs: &[(String, Vec<u8>)]) {
        self.xattrs = attrs
            .iter()
            .map(|(k, v)| (k.clone(), crate::id::to_hex(v)))
            .collect();
    }

    /// The extended attributes with their value bytes (undecodable values are dropped).
    pub fn xattr_values(&self) -> Vec<(String, Vec<u8>)> {
        self.xattrs
            .iter()
            .filter_map(|(k, v)| crate::id::from_hex(v).map(|b| (k.clone(), b)))
            .collect()
    }

    /// The hardlink group `(dev, inode)` of a file linked more than once.
    pub fn hardlink_group(&self) -> Option<(u64, u64)> {
        (self.kind == NodeKind::File && self.links > 1 && self.inode != 0)
            .then_some((self.dev, self.inode))
    }

    /// The exact symlink target bytes.
    pub fn target_bytes(&self) -> Option<Vec<u8>> {
        self.target
            .as_ref()
            .map(|t| decode_bytes(t, self.target_hex.as_deref()))
    }
}

fn encode_bytes(b: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(b).into_owned(),
            Some(crate::id::to_hex(b)),
        ),
    }
}

/// The bytes of a valid hex string, decoded as they are iterated.
#[derive(Clone)]
struct HexBytes<'a>(std::slice::ChunksExact<'a, u8>);

impl<'a> HexBytes<'a> {
    /// `None` when `hex` is not valid hex (then the name is its lossy form,
    /// as [`decode_bytes`] falls back to).
    fn new(hex: &'a str) -> Option<Self> {
        (hex.len().is_multiple_of(2) && hex.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| HexBytes(hex.as_bytes().chunks_exact(2)))
    }
}

impl Iterator for HexBytes<'_> {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let pair = self.0.next()?;
        let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        Some(digit(pair[0]) << 4 | digit(pair[1]))
    }
}

fn decode_bytes(s: &str, hex: Option<&str>) -> Vec<u8> {
    hex.and_then(crate::id::from_hex)
        .unwrap_or_else(|| s.as_bytes().to_vec())
}

impl Tree {
    /// Sort entries by name bytes (the stored order).
    pub fn sort(&mut self) {
        if !self.nodes.is_sorted_by(|a, b| a.cmp_by_name(b).is_le()) {
            self.nodes.sort_by(Node::cmp_by_name);
        }
    }

    /// Cut the (sorted) entries into parts of at most `max_nodes` entries,
    /// in order; an empty tree is one empty part. The caller stores them
    /// last first, setting each part's `next` to the id of the one after.
    pub fn into_parts(self, max_nodes: usize) -> Vec<Vec<Node>> {
        let max = max_nodes.max(1);
        if self.nodes.len() <= max {
            return vec![self.nodes];
        }
        let mut parts = Vec::with_capacity(self.nodes.len().div_ceil(max));
        let mut rest = self.nodes.into_iter().peekable();
        while rest.peek().is_some() {
            parts.push(rest.by_ref().take(max).collect());
        }
        parts
    }

    /// Find an entry by name (binary search: stored trees are sorted by
    /// name bytes, so a lookup per entry of a huge directory stays O(log n)).
    pub fn get(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.cmp_name(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_the_fidelity_fields_still_reads() {
        let old = r#"{"name":"a","type":"file","mode":420,"mtime_ns":1,"uid":0,"gid":0,"size":3}"#;
        let n: Node = serde_json::from_str(old).unwrap();
        assert_eq!((n.links, n.dev, n.sparse), (0, 0, false));
        assert!(n.xattrs.is_empty() && n.hardlink_group().is_none());
        let plain = serde_json::to_string(&Node::new(b"a", NodeKind::File)).unwrap();
        for field in ["links", "dev", "sparse", "xattrs"] {
            assert!(!plain.contains(field), "{plain}");
        }
    }

    /// Names whose lossy UTF-8 form sorts differently from their bytes:
    /// `a\xff` is stored as `a\u{fffd}` (bytes `a ef bf bd`), which sorts
    /// before `a\xf0..` and after `a\xc3\xa9` only by the raw bytes.
    fn awkward_names() -> Vec<Vec<u8>> {
        vec![
            b"a".to_vec(),
            b"a\xff".to_vec(),
            b"a\xfe\x01".to_vec(),
            "a\u{e9}".as_bytes().to_vec(),
            "a\u{fffd}".as_bytes().to_vec(),
            "a\u{10000}".as_bytes().to_vec(),
            b"a\xc3".to_vec(),
            b"a~".to_vec(),
            b"B".to_vec(),
            b"".to_vec(),
        ]
    }

    #[test]
    fn name_comparison_is_by_exact_bytes_without_allocating() {
        let names = awkward_names();
        let nodes: Vec<Node> = names.iter().map(|n| Node::new(n, NodeKind::File)).collect();
        for (a, na) in names.iter().zip(&nodes) {
            for (b, nb) in names.iter().zip(&nodes) {
                assert_eq!(na.cmp_name(b), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(na.cmp_by_name(nb), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
        let mut tree = Tree {
            nodes: nodes.into_iter().rev().collect(),
            next: None,
        };
        tree.sort();
        let mut sorted = names.clone();
        sorted.sort();
        let got: Vec<Vec<u8>> = tree.nodes.iter().map(Node::name_bytes).collect();
        assert_eq!(got, sorted);
        for n in &names {
            assert_eq!(tree.get(n).map(Node::name_bytes).as_ref(), Some(n));
        }
        assert!(tree.get(b"a\xfd").is_none());
    }

    #[test]
    fn xattrs_round_trip_through_json() {
        let mut n = Node::new(b"a", NodeKind::File);
        let attrs = vec![("user.k".to_string(), vec![0u8, 0xff, 7])];
        n.set_xattrs(&attrs);
        let back: Node = serde_json::from_str(&serde_json::to_string(&n).unwrap()).unwrap();
        assert_eq!(back.xattr_values(), attrs);
    }
}
