//! The error codes are defined once, in `ErrorCode`; the npm package's TypeScript union and
//! the table of docs/protocol.md §3.3 must list exactly the same strings.

use std::collections::BTreeSet;

use ferry_protocol::ErrorCode;

fn read(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// Every code, `unknown` (what a newer peer's code decodes as) included.
fn codes() -> BTreeSet<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .chain([ErrorCode::Unknown.as_str()])
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_typescript_union_lists_every_code() {
    let dts = read("js/index.d.ts");
    let start = dts
        .find("export type FerryErrorCode =")
        .expect("FerryErrorCode in js/index.d.ts");
    let end = start + dts[start..].find(';').expect("the union ends with ;");
    let union: BTreeSet<String> = dts[start..end]
        .split('|')
        .skip(1)
        .map(|s| s.trim().trim_matches('"').to_owned())
        .collect();
    assert_eq!(union, codes(), "js/index.d.ts FerryErrorCode vs ErrorCode");
}

#[test]
fn the_protocol_doc_table_lists_every_code() {
    let doc = read("docs/protocol.md");
    let start = doc
        .find("### 3.3 Error codes")
        .expect("§3.3 in docs/protocol.md");
    let end = start + doc[start..].find("### 3.4").expect("§3.4 follows");
    let table: BTreeSet<String> = doc[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(table, codes(), "docs/protocol.md §3.3 vs ErrorCode");
}
