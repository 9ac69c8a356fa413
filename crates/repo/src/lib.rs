//! The lifeboat repository: content-addressed, encrypted, deduplicated.
//!
//! docs/FORMAT.md is the normative spec; this crate implements it.
//!
//! Main types:
//! - [`Repository`]: open/init, keys, index, snapshots, sealed objects;
//! - [`BlobWriter`]: the parallel, bounded pipeline that stores new blobs into packs;
//! - [`ContentReader`]: reads a file's blobs back as `std::io::Read`, with read-ahead;
//! - [`chunker`]: FastCDC for streams, fixed-size for page files;
//! - [`Tree`], [`Node`], [`Snapshot`]: what a backup records;
//! - [`check()`]: structure and data verification;
//! - [`layout`]: the storage key of every object;
//! - [`verification`]: records of verifications (restore tests);
//! - [`jobs`]: the job history of scheduled runs (started / finished records);
//! - [`wal`]: archived PostgreSQL WAL files (one object each);
//! - [`lock`]: lock objects with a heartbeat, held by backups (for prune);
//! - [`cache`]: the local cache of a remote repository's metadata.
//!
//! Depends only on `lifeboat-storage`.

pub mod by_pack;
pub mod cache;
pub mod check;
pub mod chunker;
pub mod compress;
pub mod config;
pub mod crypto;
pub mod error;
pub mod id;
pub mod index;
pub mod jobs;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod pack;
pub mod reader;
pub mod repository;
pub mod snapshot;
pub mod tombstone;
pub mod tree;
pub mod verification;
pub mod wal;
pub mod writer;

pub use check::{check, CheckOptions, CheckReport};
pub use error::{Error, Result};
pub use id::Id;
pub use keys::{KdfParams, KeyMeta};
pub use pack::BlobKind;
pub use reader::ContentReader;
pub use repository::{Credentials, KeyEntry, Repository};
pub use snapshot::{Snapshot, SnapshotInfo, SnapshotKind, SnapshotStats};
pub use tree::{Node, NodeKind, Tree};
pub use verification::{Check, RestoreTestReport, VerificationKind, VerificationRecord};
pub use writer::{BlobWriter, WriteStats};
