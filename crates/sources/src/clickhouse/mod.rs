//! ClickHouse over its HTTP interface: the client, Native validation, test servers.
//!
//! - [`http::ChClient`]: streaming queries and inserts, credentials in
//!   headers, exceptions (also at the end of a 200 body) as [`ChError`];
//! - [`native::NativeStream`]: hands on `FORMAT Native` bytes block by block
//!   after checking their framing, and counts the rows;
//! - [`catalog`]: databases, tables, parts, and the per-partition queries;
//! - [`schema`]: `SHOW CREATE` text rewritten for a restore;
//! - [`server::TestServer`]: a private `clickhouse-server` for tests.

pub mod catalog;
pub mod error;
pub mod http;
pub mod native;
pub mod schema;
pub mod server;

pub use error::{ChError, Result};
