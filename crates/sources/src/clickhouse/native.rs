//! Validate `FORMAT Native` as it streams.
//!
//! [`NativeStream`] wraps a body and hands on its bytes one block at a time,
//! after parsing the block whole: column count, row count, each column's
//! name, type and data (fixed-width types, `String`, `FixedString`,
//! `Nullable`, `Array`, `Tuple`, `Map`, `LowCardinality`, `Enum`, `Decimal`,
//! `DateTime64`, ...). Every block must have the first block's columns. A
//! body that ends mid-block, or bytes that are not Native (such as the
//! exception text a server appends to a 200 response), fail the stream;
//! when the bad bytes hold an exception the error is that exception.
//! Memory is one block (the query's `max_block_size` rows).
//!
//! This is the HTTP flavour of Native: no block info and no per-column
//! serialization kinds (those are sent only to native-protocol clients that
//! announce a revision).

use std::io::Read;

use super::error::ChError;
use super::http::exception_at_end;

/// Upper bounds that catch garbage before it allocates.
const MAX_COLUMNS: u64 = 100_000;
const MAX_ROWS: u64 = 1 << 32;
const MAX_NAME: u64 = 1 << 20;
const MAX_VALUE: u64 = 1 << 31;

/// A column type, as far as its wire layout goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `n` bytes per row.
    Fixed(usize),
    /// A varint length and the bytes, per row.
    String,
    /// A null map byte per row, then the inner column.
    Nullable(Box<Layout>),
    /// A `u64` end offset per row, then the inner column of the last offset's rows.
    Array(Box<Layout>),
    /// Each element column in turn.
    Tuple(Vec<Layout>),
    /// Dictionary-encoded: version prefix, index type, keys, indexes.
    LowCardinality(Box<Layout>),
}

/// The layout of a ClickHouse type name; `None` for types this validator
/// does not know (the caller fails clearly rather than store unchecked bytes).
pub fn layout(ty: &str) -> Option<Layout> {
    let ty = ty.trim();
    let (name, args) = match ty.find('(') {
        Some(i) if ty.ends_with(')') => (&ty[..i], Some(&ty[i + 1..ty.len() - 1])),
        _ => (ty, None),
    };
    let inner = |a: Option<&str>| a.and_then(layout).map(Box::new);
    Some(match name.trim() {
        "UInt8" | "Int8" | "Bool" | "Enum8" | "Nothing" => Layout::Fixed(1),
        "UInt16" | "Int16" | "Date" | "Enum16" => Layout::Fixed(2),
        "UInt32" | "Int32" | "Float32" | "DateTime" | "IPv4" | "Date32" | "Decimal32" => {
            Layout::Fixed(4)
        }
        "UInt64" | "Int64" | "Float64" | "DateTime64" | "Decimal64" => Layout::Fixed(8),
        n if n.starts_with("Interval") => Layout::Fixed(8),
        "UInt128" | "Int128" | "UUID" | "IPv6" | "Decimal128" => Layout::Fixed(16),
        "UInt256" | "Int256" | "Decimal256" => Layout::Fixed(32),
        "Decimal" => Layout::Fixed(decimal_width(args?)?),
        "FixedString" => Layout::Fixed(args?.trim().parse().ok()?),
        "String" => Layout::String,
        "Nullable" => Layout::Nullable(inner(args)?),
        "Array" => Layout::Array(inner(args)?),
        "LowCardinality" => Layout::LowCardinality(Box::new(dictionary(layout(args?)?))),
        "SimpleAggregateFunction" => layout(split_args(args?).get(1)?)?,
        "Tuple" => Layout::Tuple(tuple_elements(args?)?),
        "Map" => {
            let kv = split_args(args?);
            if kv.len() != 2 {
                return None;
            }
            Layout::Array(Box::new(Layout::Tuple(vec![
                layout(kv[0])?,
                layout(kv[1])?,
            ])))
        }
        _ => return None,
    })
}

/// `LowCardinality(Nullable(T))` keeps its dictionary as plain `T`.
fn dictionary(l: Layout) -> Layout {
    match l {
        Layout::Nullable(inner) => *inner,
        other => other,
    }
}

/// Bytes of `Decimal(P, S)`.
fn decimal_width(args: &str) -> Option<usize> {
    let p: u32 = split_args(args).first()?.trim().parse().ok()?;
    Some(match p {
        1..=9 => 4,
        10..=18 => 8,
        19..=38 => 16,
        39..=76 => 32,
        _ => return None,
    })
}

/// Tuple elements, which may be named (`a UInt8, b String`).
fn tuple_elements(args: &str) -> Option<Vec<Layout>> {
    split_args(args)
        .into_iter()
        .map(|e| {
            layout(e).or_else(|| {
                let (_, ty) = e.trim().split_once(' ')?;
                layout(ty)
            })
        })
        .collect()
}

/// Split type arguments at top-level commas (outside parentheses and quotes).
fn split_args(s: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start, mut out) = (0i32, false, 0, Vec::new());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth -= 1,
            b',' if !quoted && depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(s[start..].trim());
    out
}

/// Why a block did not parse.
enum Broken {
    /// The body ended inside a block.
    Truncated,
    /// The bytes are not Native.
    Invalid(String),
    /// Reading the body failed.
    Io(std::io::Error),
}

/// One column's name and type.
type Column = (String, String);

/// A reader of validated Native bytes; see the module documentation.
pub struct NativeStream<R: Read> {
    src: R,
    url: String,
    block: Vec<u8>,
    pos: usize,
    columns: Option<Vec<Column>>,
    rows: u64,
    blocks: u64,
    done: bool,
}

impl<R: Read> NativeStream<R> {
    /// Validate `src`, a Native body from the server at `url`.
    pub fn new(src: R, url: &str) -> Self {
        NativeStream {
            src,
            url: url.to_string(),
            block: Vec::new(),
            pos: 0,
            columns: None,
            rows: 0,
            blocks: 0,
            done: false,
        }
    }

    /// Rows in the blocks handed on so far (all of them once `read` returned 0).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Blocks handed on so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The columns (name, type) of the first block, if there was one.
    pub fn columns(&self) -> Option<&[Column]> {
        self.columns.as_deref()
    }

    /// Parse the next block into `self.block`; `false` at a clean end.
    fn next_block(&mut self) -> std::io::Result<bool> {
        self.block.clear();
        self.pos = 0;
        let mut p = Parser {
            src: &mut self.src,
            buf: &mut self.block,
        };
        match p.block(self.columns.as_deref()) {
            Ok(None) => Ok(false),
            Ok(Some((columns, rows))) => {
                if self.columns.is_none() {
                    self.columns = Some(columns);
                }
                self.rows += rows;
                self.blocks += 1;
                Ok(true)
            }
            Err(broken) => Err(self.failure(broken)),
        }
    }

    /// The error for a broken block: the server's exception when the bad
    /// bytes (and what follows, up to 64 KiB) hold one.
    fn failure(&mut self, broken: Broken) -> std::io::Error {
        let detail = match broken {
            Broken::Io(e) => return e,
            Broken::Truncated => format!(
                "the body ends inside block {} (after {} whole rows)",
                self.blocks + 1,
                self.rows
            ),
            Broken::Invalid(why) => format!("block {}: {why}", self.blocks + 1),
        };
        let mut rest = std::mem::take(&mut self.block);
        let _ = (&mut self.src).take(64 * 1024).read_to_end(&mut rest);
        let err = match exception_at_end(&rest) {
            Some((code, message)) => ChError::Server {
                url: self.url.clone(),
                code,
                during: " in the middle of a 200 response",
                message,
            },
            None => ChError::Native {
                url: self.url.clone(),
                detail,
            },
        };
        std::io::Error::other(err)
    }
}

impl<R: Read> Read for NativeStream<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.block.len() {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if !self.next_block()? {
                self.done = true;
                return Ok(0);
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads exact amounts from `src`, recording every byte into `buf`.
struct Parser<'a, R: Read> {
    src: &'a mut R,
    buf: &'a mut Vec<u8>,
}

impl<R: Read> Parser<'_, R> {
    /// One block: `None` at a clean end of the body.
    fn block(&mut self, expect: Option<&[Column]>) -> Result<Option<(Vec<Column>, u64)>, Broken> {
        let Some(ncols) = self.first_varint()? else {
            return Ok(None);
        };
        let nrows = self.varint()?;
        if ncols > MAX_COLUMNS || nrows > MAX_ROWS {
            return Err(Broken::Invalid(format!(
                "implausible header: {ncols} columns, {nrows} rows"
            )));
        }
        if let Some(cols) = expect {
            if cols.len() as u64 != ncols {
                return Err(Broken::Invalid(format!(
                    "{ncols} columns where the first block had {}",
                    cols.len()
                )));
            }
        }
        let mut columns = Vec::with_capacity(ncols as usize);
        for i in 0..ncols as usize {
            let col = (self.name()?, self.name()?);
            if let Some(cols) = expect {
                if cols[i] != col {
                    return Err(Broken::Invalid(format!(
                        "column {} is {col:?} where the first block had {:?}",
                        i + 1,
                        cols[i]
                    )));
                }
            }
            let lay = layout(&col.1).ok_or_else(|| {
                Broken::Invalid(format!(
                    "column {:?} has type {:?}, which lifeboat cannot validate",
                    col.0, col.1
                ))
            })?;
            if nrows > 0 {
                if let Layout::LowCardinality(_) = lay {
                    self.skip(8)?; // the key serialization version prefix
                }
                self.column(&lay, nrows)?;
            }
            columns.push(col);
        }
        Ok(Some((columns, nrows)))
    }

    /// A column of `rows` values.
    fn column(&mut self, lay: &Layout, rows: u64) -> Result<(), Broken> {
        match lay {
            Layout::Fixed(n) => self.skip(rows * *n as u64),
            Layout::String => {
                for _ in 0..rows {
                    let len = self.varint()?;
                    if len > MAX_VALUE {
                        return Err(Broken::Invalid(format!("a {len}-byte string")));
                    }
                    self.skip(len)?;
                }
                Ok(())
            }
            Layout::Nullable(inner) => {
                self.skip(rows)?;
                self.column(inner, rows)
            }
            Layout::Array(inner) => {
                let total = self.offsets(rows)?;
                self.column(inner, total)
            }
            Layout::Tuple(elems) => elems.iter().try_for_each(|e| self.column(e, rows)),
            Layout::LowCardinality(keys) => self.low_cardinality(keys, rows),
        }
    }

    /// `rows` ascending `u64` end offsets; the last one.
    fn offsets(&mut self, rows: u64) -> Result<u64, Broken> {
        let mut last = 0u64;
        for _ in 0..rows {
            let off = self.u64()?;
            if off < last || off - last > MAX_VALUE {
                return Err(Broken::Invalid(format!(
                    "array offsets go from {last} to {off}"
                )));
            }
            last = off;
        }
        Ok(last)
    }

    /// Index type and flags, dictionary keys, then one index per row.
    fn low_cardinality(&mut self, keys: &Layout, rows: u64) -> Result<(), Broken> {
        const HAS_ADDITIONAL_KEYS: u64 = 1 << 9;
        const NEED_GLOBAL_DICTIONARY: u64 = 1 << 8;
        let flags = self.u64()?;
        let width = match flags & 0xff {
            0 => 1,
            1 => 2,
            2 => 4,
            3 => 8,
            t => return Err(Broken::Invalid(format!("LowCardinality index type {t}"))),
        };
        if flags & NEED_GLOBAL_DICTIONARY != 0 {
            return Err(Broken::Invalid(
                "LowCardinality with a global dictionary".into(),
            ));
        }
        if flags & HAS_ADDITIONAL_KEYS != 0 {
            let nkeys = self.u64()?;
            if nkeys > MAX_ROWS {
                return Err(Broken::Invalid(format!("{nkeys} LowCardinality keys")));
            }
            self.column(keys, nkeys)?;
        }
        let nidx = self.u64()?;
        if nidx != rows {
            return Err(Broken::Invalid(format!(
                "{nidx} LowCardinality indexes for {rows} rows"
            )));
        }
        self.skip(rows * width)
    }

    /// A length-prefixed name or type.
    fn name(&mut self) -> Result<String, Broken> {
        let len = self.varint()?;
        if len > MAX_NAME {
            return Err(Broken::Invalid(format!("a {len}-byte column name or type")));
        }
        let start = self.buf.len();
        self.skip(len)?;
        String::from_utf8(self.buf[start..].to_vec())
            .map_err(|_| Broken::Invalid("a column name or type that is not UTF-8".into()))
    }

    /// The first varint of a block; `None` when the body ends right here.
    fn first_varint(&mut self) -> Result<Option<u64>, Broken> {
        let mut b = [0u8; 1];
        loop {
            match self.src.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Broken::Io(e)),
            }
        }
        self.buf.push(b[0]);
        if b[0] < 0x80 {
            return Ok(Some(u64::from(b[0])));
        }
        self.varint_from(u64::from(b[0] & 0x7f), 7).map(Some)
    }

    fn varint(&mut self) -> Result<u64, Broken> {
        self.varint_from(0, 0)
    }

    /// LEB128, continuing from `value` with `shift` bits read.
    fn varint_from(&mut self, mut value: u64, mut shift: u32) -> Result<u64, Broken> {
        loop {
            if shift > 63 {
                return Err(Broken::Invalid("a varint longer than 10 bytes".into()));
            }
            let start = self.buf.len();
            self.skip(1)?;
            let b = self.buf[start];
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    fn u64(&mut self) -> Result<u64, Broken> {
        let start = self.buf.len();
        self.skip(8)?;
        let bytes: [u8; 8] = self.buf[start..].try_into().expect("8 bytes");
        Ok(u64::from_le_bytes(bytes))
    }

    /// Read exactly `n` bytes into the record.
    fn skip(&mut self, n: u64) -> Result<(), Broken> {
        let got = (&mut *self.src)
            .take(n)
            .read_to_end(self.buf)
            .map_err(Broken::Io)?;
        if (got as u64) < n {
            return Err(Broken::Truncated);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_of_old_and_new_type_names() {
        assert_eq!(layout("Decimal(18, 4)"), Some(Layout::Fixed(8)));
        assert_eq!(layout("DateTime('Europe/Berlin')"), Some(Layout::Fixed(4)));
        assert_eq!(layout("DateTime64(3, 'UTC')"), Some(Layout::Fixed(8)));
        assert_eq!(
            layout("Enum8('a, b' = 1, 'c)' = 2)"),
            Some(Layout::Fixed(1))
        );
        assert_eq!(
            layout("LowCardinality(Nullable(String))"),
            Some(Layout::LowCardinality(Box::new(Layout::String)))
        );
        assert_eq!(
            layout("Map(String, Array(UInt8))"),
            Some(Layout::Array(Box::new(Layout::Tuple(vec![
                Layout::String,
                Layout::Array(Box::new(Layout::Fixed(1)))
            ]))))
        );
        assert_eq!(
            layout("Tuple(a Int32, b Nullable(String))"),
            Some(Layout::Tuple(vec![
                Layout::Fixed(4),
                Layout::Nullable(Box::new(Layout::String))
            ]))
        );
        assert_eq!(layout("AggregateFunction(uniq, UInt64)"), None);
    }

    /// One block: a UInt32 column `n` and a String column `s`.
    fn block(rows: &[(u32, &str)]) -> Vec<u8> {
        let mut b = vec![2, rows.len() as u8];
        b.extend([1, b'n', 6]);
        b.extend(b"UInt32");
        for (n, _) in rows {
            b.extend(n.to_le_bytes());
        }
        b.extend([1, b's', 6]);
        b.extend(b"String");
        for (_, s) in rows {
            b.push(s.len() as u8);
            b.extend(s.as_bytes());
        }
        b
    }

    fn read_all(bytes: Vec<u8>) -> (std::io::Result<Vec<u8>>, u64) {
        let mut s = NativeStream::new(std::io::Cursor::new(bytes), "http://test");
        let mut out = Vec::new();
        let r = s.read_to_end(&mut out).map(|_| out);
        (r, s.rows())
    }

    #[test]
    fn whole_blocks_pass_through_unchanged() {
        let mut body = block(&[(1, "a"), (2, "bc")]);
        body.extend(block(&[(3, "")]));
        let (out, rows) = read_all(body.clone());
        assert_eq!(out.unwrap(), body);
        assert_eq!(rows, 3);
    }

    #[test]
    fn a_truncated_body_fails() {
        let mut body = block(&[(1, "a"), (2, "bc")]);
        body.truncate(body.len() - 1);
        let err = read_all(body).0.unwrap_err();
        assert!(err.to_string().contains("ends inside block 1"), "{err}");
    }

    #[test]
    fn an_exception_trailer_fails_with_the_exception() {
        let mut body = block(&[(1, "a")]);
        body.extend(b"Code: 395, e.displayText() = DB::Exception: Value passed to 'throwIf' function is non zero, e.what() = DB::Exception\n");
        let err = read_all(body).0.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("code 395") && msg.contains("throwIf"), "{msg}");
    }
}
