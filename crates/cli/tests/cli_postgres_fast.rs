//! End-to-end tests of the parallel restore path on real PostgreSQL:
//! definitions, then table data over several streams read from the
//! repository at the block offsets recorded at backup time, then indexes
//! and constraints with `pg_restore -j`. Restores are compared with the
//! source by content (normalised schema dump, per-table checksums with
//! sequences and large objects) and with the single-stream path.

mod common;
mod pg_common;

use lifeboat_sources::postgres::ScratchCluster;
use pg_common::*;

/// Several tables of different sizes, indexes, foreign keys, a serial and a
/// free-standing sequence, a large object, a view, comments and a grant.
const SHOP: &str = "
CREATE ROLE shop_reader;
CREATE TABLE public.customers (id serial PRIMARY KEY, email text UNIQUE NOT NULL, note text);
CREATE TABLE public.orders (id bigserial PRIMARY KEY,
    customer int NOT NULL REFERENCES public.customers(id),
    amount numeric(12,2) CHECK (amount >= 0), placed timestamptz NOT NULL);
CREATE INDEX orders_placed ON public.orders (placed);
CREATE TABLE public.lines (order_id bigint REFERENCES public.orders(id) ON DELETE CASCADE,
    n int, sku text, PRIMARY KEY (order_id, n));
CREATE TABLE public.empty_table (x int);
CREATE SEQUENCE public.invoice_no START 1000;
SELECT setval('public.invoice_no', 4242);
CREATE SCHEMA audit;
CREATE TABLE audit.log (at timestamptz, what text);
CREATE INDEX log_at ON audit.log (at);
CREATE VIEW public.big_orders AS SELECT * FROM public.orders WHERE amount > 500;
COMMENT ON TABLE public.orders IS 'one row per order';
GRANT SELECT ON public.orders TO shop_reader;
INSERT INTO public.customers (email, note)
    SELECT 'c' || g || '@example.com', repeat('n', g % 50) FROM generate_series(1, 2000) g;
INSERT INTO public.orders (customer, amount, placed)
    SELECT 1 + g % 2000, (g % 1000)::numeric + 0.25, timestamptz '2024-01-01' + g * interval '1 minute'
    FROM generate_series(1, 30000) g;
INSERT INTO public.lines SELECT o, n, 'sku-' || (o * n) % 977 FROM generate_series(1, 20000) o, generate_series(1, 3) n;
INSERT INTO audit.log SELECT timestamptz '2024-01-01' + g * interval '1 second', 'event ' || g FROM generate_series(1, 5000) g;
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 1000), 'UTF8'));
";

fn shop_cluster() -> ScratchCluster {
    let c = cluster();
    c.create_database("shop").expect("create shop");
    c.run_sql_in("shop", SHOP).expect("shop loads");
    c
}

#[test]
fn a_full_restore_loads_data_over_parallel_streams_and_equals_the_source() {
    let src = shop_cluster();
    let want_schema = schema(&src, "shop");
    let want = sums(&src, "shop");
    assert_eq!(want["public.lines"].0, 60000);
    assert_eq!(want["pg_largeobject"].0, 1);
    assert!(want.contains_key("sequence:public.invoice_no"), "{want:?}");

    let ws = Workspace::new(&url(&src, "shop"), "");
    let b = ws.backup(&[]);
    // The backup records where each table's data starts in the archive.
    let blocks = b["snapshot"]["meta"]["archive"]["data_blocks"]
        .as_array()
        .expect("data block offsets recorded")
        .clone();
    assert!(
        blocks.len() >= 6,
        "one block per table and the large objects: {blocks:?}"
    );
    let offsets: Vec<u64> = blocks
        .iter()
        .map(|b| b["offset"].as_u64().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");

    for (db, jobs) in [("auto", None), ("three", Some("3"))] {
        let mut args = vec![];
        if let Some(j) = jobs {
            args.extend(["--jobs", j]);
        }
        let r = ws.restore("latest", &url(&src, db), &args);
        r.ok();
        assert!(r.stdout.contains("restored with parallel"), "{}", r.stdout);
        if let Some(j) = jobs {
            assert!(
                r.stdout.contains(&format!("over {j} streams")),
                "{}",
                r.stdout
            );
        }
        assert_same_schema(&want_schema, &schema(&src, db), db);
        assert_same_sums(&want, &sums(&src, db), db);
        assert_eq!(
            value(&src, db, "SELECT nextval('public.invoice_no')"),
            "4243",
            "sequence value restored"
        );
    }

    // The single-stream path gives the same database.
    let r = ws.restore("latest", &url(&src, "single"), &["--jobs", "1"]);
    r.ok();
    assert!(r.stdout.contains("one pg_restore stream"), "{}", r.stdout);
    assert_same_schema(&want_schema, &schema(&src, "single"), "--jobs 1");
    assert_same_sums(&want, &sums(&src, "single"), "--jobs 1");
}

#[test]
fn a_partial_restore_through_the_parallel_path_equals_the_single_stream_one() {
    let src = shop_cluster();
    let want = sums(&src, "shop");
    let ws = Workspace::new(&url(&src, "shop"), "");
    ws.backup(&[]);

    // Orders (with their FK target customers) and the audit schema.
    let sel = [
        "-t",
        "public.orders",
        "-t",
        "public.customers",
        "-n",
        "audit",
    ];
    let fast = ws.restore("latest", &url(&src, "fast"), &sel);
    fast.ok();
    assert!(
        fast.stdout.contains("restored with parallel"),
        "{}",
        fast.stdout
    );
    let mut single_args = sel.to_vec();
    single_args.extend(["--jobs", "1"]);
    let single = ws.restore("latest", &url(&src, "single"), &single_args);
    single.ok();
    assert!(
        single.stdout.contains("one pg_restore stream"),
        "{}",
        single.stdout
    );

    assert_same_schema(&schema(&src, "single"), &schema(&src, "fast"), "partial");
    let chosen = [
        "public.orders",
        "public.customers",
        "audit.",
        "sequence:public.orders_id_seq",
        "sequence:public.customers_id_seq",
    ];
    let got = sums(&src, "fast");
    assert_same_sums(
        &only(&want, &chosen),
        &only(&got, &chosen),
        "partial restore",
    );
    assert!(!got.contains_key("public.lines"), "{got:?}");
    assert_same_sums(&sums(&src, "single"), &got, "partial, both paths");
    // Indexes and the foreign key between the chosen tables came along.
    let indexes = rows(
        &src,
        "fast",
        "SELECT indexname FROM pg_indexes WHERE schemaname IN ('public', 'audit') ORDER BY 1",
    );
    assert_eq!(
        indexes,
        [
            "customers_email_key",
            "customers_pkey",
            "log_at",
            "orders_pkey",
            "orders_placed"
        ]
    );
    assert_eq!(
        value(
            &src,
            "fast",
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        ),
        "1"
    );
}

#[test]
fn a_failed_copy_fails_the_parallel_restore_naming_the_table() {
    let src = shop_cluster();
    let ws = Workspace::new(&url(&src, "shop"), "");
    ws.backup(&[]);
    // The target adds a constraint every order violates as soon as the
    // table is created, so the definitions restore and the COPY fails.
    src.create_database("poisoned").unwrap();
    src.run_sql_in(
        "poisoned",
        "CREATE FUNCTION public.poison() RETURNS event_trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands()
                      WHERE command_tag = 'CREATE TABLE' AND object_identity = 'public.orders') THEN
             ALTER TABLE public.orders ADD CONSTRAINT poison CHECK (id < 0);
           END IF;
         END $$;
         CREATE EVENT TRIGGER poison ON ddl_command_end EXECUTE FUNCTION public.poison();",
    )
    .unwrap();
    let r = ws.restore("latest", &url(&src, "poisoned"), &["--force"]);
    let line = r.error(16, &["pg_restore reported", "orders", "poison"]);
    assert!(line.contains("COPY"), "{line}");
    // Nothing after the failed data phase ran: no index was built.
    assert_eq!(
        value(
            &src,
            "poisoned",
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"
        ),
        "0"
    );
}
