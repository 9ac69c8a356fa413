//! The test vectors of docs/FORMAT.md ("Test vectors"), checked against the
//! code. The vectors are parsed from FORMAT.md itself, so the document and
//! the implementation cannot drift apart: change either and this fails,
//! printing what the code computes.

use lifeboat_repo::chunker::{Chunker, FastCdc};
use lifeboat_repo::crypto::{self, ad, Keys, MasterKey};
use lifeboat_repo::id::{from_hex, to_hex};
use lifeboat_repo::keys::{passphrase_key, KdfParams};
use std::collections::BTreeMap;

/// The `vectors` block of FORMAT.md as `name = value` pairs.
fn doc_vectors() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md");
    let doc = std::fs::read_to_string(path).expect("read docs/FORMAT.md");
    let start = doc
        .find("```vectors\n")
        .expect("FORMAT.md has a ```vectors block")
        + 11;
    let len = doc[start..].find("```").expect("the vectors block ends");
    doc[start..start + len]
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not `name = value`: {l}"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

fn hex(v: &str) -> Vec<u8> {
    from_hex(v).unwrap_or_else(|| panic!("not hex: {v}"))
}

fn quoted(v: &str) -> String {
    serde_json::from_str(v).unwrap_or_else(|e| panic!("not a JSON string ({e}): {v}"))
}

fn field(v: &str, name: &str) -> usize {
    v.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name}= missing in {v}"))
        .parse()
        .expect("a number")
}

/// BLAKE3 extendable output of `seed`, `len` bytes: the chunker inputs.
fn xof(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn chunk_ends(cdc: &FastCdc, data: &[u8]) -> String {
    let mut ends = Vec::new();
    let mut at = 0;
    while at < data.len() {
        at += cdc.cut(&data[at..]);
        ends.push(at.to_string());
    }
    ends.join(", ")
}

/// Everything the code computes for the doc's inputs.
fn computed(doc: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let get = |k: &str| {
        doc.get(k)
            .unwrap_or_else(|| panic!("FORMAT.md lacks vector {k}"))
    };
    let mut out = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        out.insert(k.to_string(), v);
    };
    let master: [u8; 32] = hex(get("master_key")).try_into().expect("32 bytes");
    let keys = Keys::derive(&MasterKey::from_bytes(master));
    for (name, ctx) in [
        ("blob_id_key", crypto::BLOB_ID_CONTEXT),
        ("seal_key", crypto::SEAL_CONTEXT),
        ("chunker_seed", crypto::CHUNKER_CONTEXT),
        ("config_mac_key", crypto::CONFIG_MAC_CONTEXT),
    ] {
        put(name, to_hex(&blake3::derive_key(ctx, &master)));
    }
    assert_eq!(
        keys.chunker_seed,
        blake3::derive_key(crypto::CHUNKER_CONTEXT, &master)
    );
    let mut table = [0u8; 2048];
    blake3::Hasher::new_keyed(&keys.chunker_seed)
        .update(b"gear table")
        .finalize_xof()
        .fill(&mut table);
    for i in [0usize, 1, 255] {
        let g = u64::from_le_bytes(table[i * 8..i * 8 + 8].try_into().expect("8"));
        put(&format!("gear[{i}]"), format!("{g:016x}"));
    }

    let plain = quoted(get("blob_plaintext"));
    let id = keys.blob_id(plain.as_bytes());
    put("blob_id", id.to_string());
    put(
        "blob_ad",
        format!("{:?}", String::from_utf8(ad::blob(&id)).expect("ascii")),
    );

    let nonce: [u8; 24] = hex(get("seal_nonce")).try_into().expect("24 bytes");
    let seal_plain = quoted(get("seal_plaintext"));
    let seal_ad = quoted(get("seal_ad"));
    let sealed = keys.seal_with_nonce(seal_ad.as_bytes(), nonce, seal_plain.as_bytes());
    put("sealed", to_hex(&sealed));
    let opened = keys
        .open(&sealed, seal_ad.as_bytes(), "vector")
        .expect("opens");
    assert_eq!(opened, seal_plain.as_bytes());
    assert!(keys.open(&sealed, ad::INDEX, "vector").is_err());
    let blob_sealed = keys.seal_with_nonce(&ad::blob(&id), nonce, plain.as_bytes());
    put("blob_sealed", to_hex(&blob_sealed));

    let payload = quoted(get("config_payload"));
    put("config_mac", keys.mac(payload.as_bytes()).to_string());

    let params = get("kdf_params");
    let kdf = KdfParams {
        m_cost: field(params, "m_cost") as u32,
        t_cost: field(params, "t_cost") as u32,
        p_cost: field(params, "p_cost") as u32,
    };
    let k = passphrase_key(
        quoted(get("kdf_passphrase")).as_bytes(),
        &hex(get("kdf_salt")),
        kdf,
    )
    .expect("argon2");
    put("kdf_key", to_hex(&*k));

    for prefix in ["chunk_small", "chunk_default"] {
        let input = get(&format!("{prefix}_input"));
        let data = xof(
            &quoted(&input[..input.rfind(' ').expect("seed len")]),
            field(input, "len"),
        );
        let p = get(&format!("{prefix}_params"));
        let cdc = FastCdc::new(
            field(p, "min"),
            field(p, "avg"),
            field(p, "max"),
            &keys.chunker_seed,
        );
        put(&format!("{prefix}_ends"), chunk_ends(&cdc, &data));
    }
    out
}

#[test]
fn every_format_md_vector_matches_the_code() {
    let doc = doc_vectors();
    let got = computed(&doc);
    let listing: String = got.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    for (k, v) in &got {
        assert_eq!(
            doc.get(k),
            Some(v),
            "FORMAT.md vector {k} differs from the code; the code computes:\n{listing}"
        );
    }
    let inputs = [
        "master_key",
        "blob_plaintext",
        "seal_ad",
        "seal_nonce",
        "seal_plaintext",
        "config_payload",
        "kdf_passphrase",
        "kdf_salt",
        "kdf_params",
        "chunk_small_input",
        "chunk_small_params",
        "chunk_default_input",
        "chunk_default_params",
    ];
    for k in doc.keys() {
        assert!(
            got.contains_key(k) || inputs.contains(&k.as_str()),
            "FORMAT.md vector {k} is not checked by this test"
        );
    }
}

/// The associated-data table of FORMAT.md ("Sealing") names exactly the
/// strings the code seals with: a changed `ad` would make every stored
/// object of that type unreadable, and no vector above covers these.
#[test]
fn format_md_associated_data_table_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md");
    let doc = std::fs::read_to_string(path).expect("read docs/FORMAT.md");
    let rows: Vec<&str> = doc
        .lines()
        .filter(|l| l.starts_with('|') && l.contains("| `lifeboat:"))
        .collect();
    for (object, ad) in [
        ("pack trailer", ad::PACK_TRAILER.to_vec()),
        ("index file", ad::INDEX.to_vec()),
        ("snapshot", ad::object("snapshots")),
        ("verification record", ad::object("verifications")),
        ("job record", ad::object("jobs")),
        ("tombstone", ad::object("tombstones")),
        ("copy record", ad::object("copied")),
        ("wrapped master key", ad::KEY.to_vec()),
    ] {
        let ad = String::from_utf8(ad).expect("ascii");
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("| {object}")) && r.ends_with(&format!("| `{ad}` |"))),
            "FORMAT.md's associated data of {object} is not `{ad}` (what the code uses); rows: {rows:#?}"
        );
    }
    let id = lifeboat_repo::Id([0xab; 32]);
    let blob = String::from_utf8(ad::blob(&id)).expect("ascii");
    assert_eq!(blob, format!("lifeboat:blob:{}", "ab".repeat(32)));
    assert!(rows.iter().any(|r| r.starts_with("| blob")
        && r.contains("| `lifeboat:blob:` + the blob id as 64 hex digits |")));
}
