//! The ClickHouse HTTP client and Native validation against a real private server.

use std::io::Read;

use lifeboat_sources::clickhouse::http::{into_ch_error, ChClient};
use lifeboat_sources::clickhouse::native::NativeStream;
use lifeboat_sources::clickhouse::server::{TestServer, PASSWORD};
use lifeboat_sources::clickhouse::ChError;

fn client(server: &TestServer) -> ChClient {
    ChClient::new(&server.url(), "default", PASSWORD).expect("client")
}

/// Read a Native query through the validator: (bytes, rows) or the error.
fn native(c: &ChClient, sql: &str) -> Result<(Vec<u8>, u64), ChError> {
    let body = c.query(sql, &[("max_threads", "1"), ("max_block_size", "65536")])?;
    let mut stream = NativeStream::new(body, &c.url());
    let mut out = Vec::new();
    match stream.read_to_end(&mut out) {
        Ok(_) => Ok((out, stream.rows())),
        Err(e) => Err(into_ch_error(e, &c.url())),
    }
}

#[test]
fn answers_text_queries() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let c = client(&server);
    assert_eq!(c.query_text("SELECT 1 + 1").unwrap().trim(), "2");
}

#[test]
fn a_wrong_password_is_an_auth_error_that_does_not_echo_it() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let c = ChClient::new(&server.url(), "default", "not-the-password-xyzzy").unwrap();
    let err = c.query_text("SELECT 1").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ChError::Auth { .. }), "{msg}");
    assert!(
        msg.contains("check the source's user and password"),
        "{msg}"
    );
    assert!(!msg.contains("xyzzy"), "{msg}");
}

#[test]
fn native_of_varied_types_validates_and_counts_rows() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let c = client(&server);
    c.execute("CREATE TABLE default.t (d Date, id UInt64, n Nullable(Int32), a Array(String), dec Decimal(18, 4), ts DateTime, f Float64, lc LowCardinality(String), lcn LowCardinality(Nullable(String)), fs FixedString(3), e Enum8('x' = 1, 'y' = 2), tu Tuple(UInt8, Nullable(String))) ENGINE = MergeTree PARTITION BY toYYYYMM(d) ORDER BY id")
        .unwrap();
    c.execute("INSERT INTO default.t SELECT toDate('2026-01-01') + number % 60, number, if(number % 3 = 0, NULL, toInt32(number)), arrayMap(x -> toString(x), range(number % 4)), toDecimal64(number / 7, 4), toDateTime('2026-01-01 00:00:00') + number, number / 3, toString(number % 5), if(number % 2 = 0, NULL, toString(number % 7)), 'abc', if(number % 2 = 0, 'x', 'y'), (toUInt8(number % 200), if(number % 5 = 0, NULL, 'v')) FROM system.numbers LIMIT 200000")
        .unwrap();
    let expected: u64 = c
        .query_text("SELECT count() FROM default.t")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (bytes, rows) = native(&c, "SELECT * FROM default.t ORDER BY id FORMAT Native").unwrap();
    assert_eq!(rows, expected);
    assert_eq!(rows, 200_000);
    // The validated bytes are what the server sent: the same export again is byte-identical.
    let (again, _) = native(&c, "SELECT * FROM default.t ORDER BY id FORMAT Native").unwrap();
    assert_eq!(bytes, again);
    // And they load back: insert them into a copy, whose export is the same bytes.
    c.execute("CREATE TABLE default.t2 AS default.t").unwrap();
    c.insert(
        "INSERT INTO default.t2 FORMAT Native",
        std::io::Cursor::new(bytes.clone()),
    )
    .unwrap();
    let (copy, _) = native(&c, "SELECT * FROM default.t2 ORDER BY id FORMAT Native").unwrap();
    assert!(
        copy == bytes,
        "the copy's export differs from the original's"
    );
}

#[test]
fn an_exception_after_a_200_fails_the_stream_with_the_exception() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let c = client(&server);
    // More than the server buffers before it sends the 200 status, then a throw.
    let err = native(
        &c,
        "SELECT number, throwIf(number = 3000000) FROM system.numbers LIMIT 10000000 FORMAT Native",
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, ChError::Server { code: 395, during, .. } if !during.is_empty()),
        "{msg}"
    );
    assert!(
        msg.contains("throwIf") && msg.contains("middle of a 200 response"),
        "{msg}"
    );
}

#[test]
fn an_exception_before_the_body_is_a_server_error() {
    let Some(server) = TestServer::start() else {
        return;
    };
    let c = client(&server);
    let err = c
        .query_text("SELECT * FROM no_such_db.no_such_table")
        .unwrap_err();
    assert!(matches!(err, ChError::Server { code: 81, .. }), "{err}");
}
