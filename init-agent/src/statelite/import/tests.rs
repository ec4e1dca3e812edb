use proptest::prelude::*;

use super::*;

const ALT: &str = include_str!("../../../../conf/xcat/litefile-alt.csv");
const TREE: &str = include_str!("../../../../conf/xcat/litetree-example.csv");
const NODES: &str = include_str!("../../../../conf/xcat/statelite-example.csv");

#[test]
fn the_seed_alt_table_imports_33_rows() {
    let rows = parse_litefile(ALT).unwrap();
    assert_eq!(rows.len(), 33);
    assert!(rows.iter().all(|r| r.image == "ALL"));
    let root = rows.iter().find(|r| r.file == "/root/").unwrap();
    assert_eq!(root.options, "persistent");
    assert_eq!(rows.iter().filter(|r| r.options.is_empty()).count(), 32);
}

#[test]
fn imported_toml_round_trips_through_the_config_parser() {
    let text = import_xcat(ALT, Some(TREE), Some(NODES)).unwrap();
    assert!(text.starts_with("# Imported from xCAT tabdump"));
    let conf = crate::config::parse(&text).unwrap();
    assert_eq!(conf.statelite.litefile, parse_litefile(ALT).unwrap());
    assert_eq!(conf.statelite.litetree, parse_litetree(TREE).unwrap());
    assert_eq!(conf.statelite.node, parse_statelite(NODES).unwrap());
    assert_eq!(
        conf.statelite.litetree[1].mntopts.as_deref(),
        Some("vers=4.1,ro")
    );
}

#[test]
fn quoting_column_order_comments_and_disable_are_honoured() {
    let text = "#file,options,image,comments,disable\n\
                \"/etc/a,b\",\"persistent\",\"img\",\"say \"\"hi\"\"\",\n\
                # a comment line\n\
                \n\
                \"/etc/off\",,\"ALL\",,\"1\"\n\
                \"/etc/on\",,\"ALL\",,\"0\"\n\
                \"/etc/yes\",,\"ALL\",,\"Yes\"\n";
    let rows = parse_litefile(text).unwrap();
    let files: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(files, vec!["/etc/a,b", "/etc/on"]);
    assert_eq!(rows[0].image, "img");
}

#[test]
fn every_error_names_table_and_line() {
    let cases = [
        (
            parse_litefile("image,file\n").unwrap_err().to_string(),
            "litefile: the first line",
        ),
        (
            parse_litefile("#image,options,comments,disable\n\"ALL\",,,\n")
                .unwrap_err()
                .to_string(),
            "no `file` column",
        ),
        (
            parse_litefile("#image,file,options,comments,disable\n\"ALL\",\"/x\",\"bogus\",,\n")
                .unwrap_err()
                .to_string(),
            "litefile line 2: unknown option \"bogus\"",
        ),
        (
            parse_litefile("#image,file,options,comments,disable\n\"ALL\",,,,\n")
                .unwrap_err()
                .to_string(),
            "line 2: empty file",
        ),
        (
            parse_litefile("#image,file,options,comments,disable\n\"ALL\",\"/x\"\n")
                .unwrap_err()
                .to_string(),
            "line 2: 2 fields, the header has 5",
        ),
        (
            parse_litetree(
                "#priority,image,directory,mntopts,comments,disable\n\"high\",,\"s:/t\",,,\n",
            )
            .unwrap_err()
            .to_string(),
            "litetree line 2: priority \"high\"",
        ),
        (
            parse_statelite("#node,image,statemnt,mntopts,comments,disable\n,,\"s:/p\",,,\n")
                .unwrap_err()
                .to_string(),
            "statelite line 2: empty node",
        ),
    ];
    for (got, want) in cases {
        assert!(got.contains(want), "{got:?} lacks {want:?}");
    }
}

proptest! {
    #[test]
    fn never_panics(litefile in "\\PC{0,200}", tree in "\\PC{0,100}", nodes in "[#a-z,\"\n]{0,100}") {
        let _ = import_xcat(&litefile, Some(&tree), Some(&nodes));
        let _ = import_xcat(&format!("#image,file,options,comments,disable\n{litefile}"), None, None);
    }
}
