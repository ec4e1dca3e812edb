use proptest::prelude::*;

use super::*;

const ALT: &str = include_str!("../../../../../conf/xcat/litefile-alt.csv");
const TREE: &str = include_str!("../../../../../conf/xcat/litetree-example.csv");
const NODES: &str = include_str!("../../../../../conf/xcat/statelite-example.csv");

const LF: &str = "#image,file,options,comments,disable\n";
const LT: &str = "#priority,image,directory,mntopts,comments,disable\n";
const SL: &str = "#node,image,statemnt,mntopts,comments,disable\n";

#[test]
fn the_seed_alt_table_imports_33_rows() {
    let rows = parse_litefile(ALT).unwrap();
    assert_eq!(rows.len(), 33);
    assert!(rows.iter().all(|r| r.image == "ALL"));
    assert_eq!(rows[0].file, "/etc/adjtime");
    assert_eq!(rows[32].file, "/etc/openssh/");
    for r in &rows {
        let want = if r.file == "/root/" { "persistent" } else { "" };
        assert_eq!(r.options, want, "{}", r.file);
    }
}

#[test]
fn the_example_tables_import() {
    let tree = parse_litetree(TREE).unwrap();
    assert_eq!(
        tree,
        vec![
            LiteTree {
                priority: 1.0,
                image: "ALL".into(),
                directory: "10.0.0.1:/statelite/litetree/$node".into(),
                mntopts: None,
            },
            LiteTree {
                priority: 2.0,
                image: "ALL".into(),
                directory: "10.0.0.1:/statelite/litetree/common".into(),
                mntopts: Some("vers=4.1,ro".into()),
            },
        ]
    );
    let nodes = parse_statelite(NODES).unwrap();
    let names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(names, ["compute", "cn001"]);
    assert_eq!(nodes[1].mntopts.as_deref(), Some("nolock,tcp,vers=3"));
}

#[test]
fn imported_toml_round_trips_through_the_config_parser() {
    let cases: [(Option<&str>, Option<&str>); 4] = [
        (None, None),
        (Some(TREE), None),
        (None, Some(NODES)),
        (Some(TREE), Some(NODES)),
    ];
    for (tree, nodes) in cases {
        let text = import_xcat(ALT, tree, nodes, &NodeTables::default()).unwrap();
        assert!(
            text.starts_with("# Imported from xCAT tabdump by init-agent statelite import-xcat\n")
        );
        assert_eq!(text.contains("[[statelite.litetree]]"), tree.is_some());
        assert_eq!(text.contains("[[statelite.node]]"), nodes.is_some());
        let conf = crate::config::parse(&text).unwrap();
        assert_eq!(conf.statelite.litefile, parse_litefile(ALT).unwrap());
        let want_tree = tree.map(|t| parse_litetree(t).unwrap()).unwrap_or_default();
        assert_eq!(conf.statelite.litetree, want_tree);
        let want_nodes = nodes
            .map(|n| parse_statelite(n).unwrap())
            .unwrap_or_default();
        assert_eq!(conf.statelite.node, want_nodes);
    }
}

#[test]
fn an_empty_table_still_renders_a_valid_file() {
    let text = import_xcat(LF, None, None, &NodeTables::default()).unwrap();
    assert!(!text.contains("[[statelite"));
    crate::config::parse(&text).unwrap();
}

/// (what, litefile text, files of the rows kept)
#[test]
fn litefile_syntax() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "quoted commas and doubled quotes",
            format!("{LF}\"ALL\",\"/etc/a,b\",,\"say \"\"hi\"\", ok\",\n\"ALL\",\"/x\"\"y\",,,\n"),
            &["/etc/a,b", "/x\"y"],
        ),
        (
            "disable: 1, yes, true in any case skip; 0, no, empty keep",
            format!(
                "{LF}\"ALL\",\"/a\",,,\"1\"\n\"ALL\",\"/b\",,,\"YES\"\n\"ALL\",\"/c\",,,\"True\"\n\
                 \"ALL\",\"/d\",,,\"0\"\n\"ALL\",\"/e\",,,\"no\"\n\"ALL\",\"/f\",,,\n"
            ),
            &["/d", "/e", "/f"],
        ),
        (
            "columns in another order, extra column, no disable column",
            "#file,comments,options,image,added\n\"/a\",,\"ro\",\"img\",\"x\"\n".into(),
            &["/a"],
        ),
        (
            "blank, whitespace-only and comment lines",
            format!("\n  \n{LF}\n# a comment, \"with quotes\n   \n\"ALL\",\"/a\",,,\n#\n\"ALL\",\"/b\",,,\n\n"),
            &["/a", "/b"],
        ),
        (
            "quoted # is data, not a comment",
            format!("{LF}\"#img\",\"/a\",,,\n"),
            &["/a"],
        ),
        (
            "CRLF line ends, byte-order mark, no final newline",
            "\u{feff}#image,file,options,comments,disable\r\n\"ALL\",\"/a\",,,\r\n\"ALL\",\"/b\",,,"
                .into(),
            &["/a", "/b"],
        ),
        (
            "unquoted values and spaces around them",
            format!("{LF}ALL, /a , tmpfs ,,\n"),
            &["/a"],
        ),
        (
            "multi-line quoted comment",
            format!("{LF}\"ALL\",\"/a\",,\"two\n# lines\",\n\"ALL\",\"/b\",,,\n"),
            &["/a", "/b"],
        ),
        ("header only", LF.into(), &[]),
    ];
    for (what, text, want) in cases {
        let rows = parse_litefile(text).unwrap_or_else(|e| panic!("{what}: {e}"));
        let files: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
        assert_eq!(&files, want, "{what}");
    }
}

#[test]
fn values_are_taken_by_column_name() {
    let rows =
        parse_litefile("#file,comments,options,image\n\"/a\",\"c\",\"ro\",\"img\"\n").unwrap();
    assert_eq!(
        rows,
        vec![LiteFile {
            image: "img".into(),
            file: "/a".into(),
            options: "ro".into(),
        }]
    );
    let nodes = parse_statelite("#statemnt,node,image\n\"s:/p\",\"n1\",\n").unwrap();
    assert_eq!(
        nodes,
        vec![StateliteNode {
            node: "n1".into(),
            image: String::new(),
            statemnt: "s:/p".into(),
            mntopts: None,
        }]
    );
}

#[test]
fn priorities() {
    let cases: &[(&str, Option<f64>)] = &[
        ("1", Some(1.0)),
        ("1.5", Some(1.5)),
        ("1.0", Some(1.0)),
        ("10", Some(10.0)),
        ("-2", Some(-2.0)),
        (".5", Some(0.5)),
        ("", None),
        ("high", None),
        ("1e3", None),
        ("inf", None),
        ("NaN", None),
        ("1.2.3", None),
        ("-", None),
        (".", None),
        ("+1", None),
        ("1 5", None),
    ];
    for (text, want) in cases {
        let got = parse_litetree(&format!("{LT}\"{text}\",,\"s:/t\",,,\n"))
            .ok()
            .map(|rows| rows[0].priority);
        assert_eq!(got, *want, "{text:?}");
    }
    // Overflowing digits are not a usable priority either.
    let huge = "9".repeat(400);
    assert!(parse_litetree(&format!("{LT}{huge},,s:/t,,,\n")).is_err());
}

#[test]
fn every_error_names_table_line_and_cause() {
    use ImportError::*;
    let cases: Vec<(&str, Result<String, ImportError>, ImportError, &str)> = vec![
        (
            "empty input",
            import_xcat("", None, None, &NodeTables::default()),
            NoHeader {
                table: "litefile",
                line: 1,
            },
            "litefile line 1: expected tabdump's `#column,…` header line",
        ),
        (
            "header without #",
            import_xcat(
                "\n\nimage,file,options\n",
                None,
                None,
                &NodeTables::default(),
            ),
            NoHeader {
                table: "litefile",
                line: 3,
            },
            "litefile line 3:",
        ),
        (
            "litefile header lacks file",
            import_xcat(
                "#image,options,comments,disable\n\"ALL\",,,\n",
                None,
                None,
                &NodeTables::default(),
            ),
            MissingColumn {
                table: "litefile",
                line: 1,
                column: "file",
            },
            "litefile line 1: the header has no `file` column",
        ),
        (
            "bare # header",
            import_xcat("#\n", None, None, &NodeTables::default()),
            MissingColumn {
                table: "litefile",
                line: 1,
                column: "image",
            },
            "no `image` column",
        ),
        (
            "litetree header lacks priority",
            import_xcat(LF, Some("#image,directory\n"), None, &NodeTables::default()),
            MissingColumn {
                table: "litetree",
                line: 1,
                column: "priority",
            },
            "litetree line 1:",
        ),
        (
            "statelite header lacks statemnt",
            import_xcat(LF, None, Some("\n#node,image\n"), &NodeTables::default()),
            MissingColumn {
                table: "statelite",
                line: 2,
                column: "statemnt",
            },
            "statelite line 2:",
        ),
        (
            "too few fields, after a comment and a blank line",
            import_xcat(
                &format!("{LF}# note\n\n\"ALL\",\"/x\"\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            FieldCount {
                table: "litefile",
                line: 4,
                found: 2,
                expected: 5,
            },
            "litefile line 4: 2 fields, the header names 5",
        ),
        (
            "too many fields",
            import_xcat(
                &format!("{LF}\"ALL\",\"/a\",,,\n\"ALL\",\"/x\",,,,,\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            FieldCount {
                table: "litefile",
                line: 3,
                found: 7,
                expected: 5,
            },
            "line 3: 7 fields",
        ),
        (
            "line after a multi-line quoted field",
            import_xcat(
                &format!("{LF}\"ALL\",\"/a\",,\"1\n2\n3\",\n\"ALL\",,,,\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            EmptyField {
                table: "litefile",
                line: 5,
                column: "file",
            },
            "litefile line 5: `file` is empty",
        ),
        (
            "empty directory",
            import_xcat(
                LF,
                Some(&format!("{LT}\"1\",\"ALL\",,,,\n")),
                None,
                &NodeTables::default(),
            ),
            EmptyField {
                table: "litetree",
                line: 2,
                column: "directory",
            },
            "litetree line 2: `directory` is empty",
        ),
        (
            "empty node",
            import_xcat(
                LF,
                None,
                Some(&format!("{SL},,\"s:/p\",,,\n")),
                &NodeTables::default(),
            ),
            EmptyField {
                table: "statelite",
                line: 2,
                column: "node",
            },
            "statelite line 2: `node` is empty",
        ),
        (
            "bad priority",
            import_xcat(
                LF,
                Some(&format!("{LT}\"1\",,\"s:/a\",,,\n\"high\",,\"s:/t\",,,\n")),
                None,
                &NodeTables::default(),
            ),
            BadPriority {
                table: "litetree",
                line: 3,
                value: "high".into(),
            },
            "litetree line 3: priority \"high\" is not a number like 1 or 1.5",
        ),
        (
            "unknown option",
            import_xcat(
                &format!("{LF}\"ALL\",\"/x\",\"tempfs\",,\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            UnknownOption {
                table: "litefile",
                line: 2,
                value: "tempfs".into(),
            },
            "litefile line 2: unknown option \"tempfs\" (empty or one of: tmpfs, rw,",
        ),
        (
            "a newline inside a value",
            import_xcat(
                &format!("{LF}\"ALL\",\"/a\nb\",,,\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            ControlChar {
                table: "litefile",
                line: 2,
                column: "file",
            },
            "litefile line 2: `file` contains a control character",
        ),
        (
            "relative file, caught by the config check",
            import_xcat(
                &format!("{LF}\"ALL\",\"/a\",,,\n\"ALL\",\"etc/x\",,,\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            Invalid {
                table: "litefile",
                line: 3,
                message: String::new(),
            },
            "litefile line 3: ",
        ),
        (
            "a file listed twice",
            import_xcat(
                &format!("{LF}\"ALL\",\"/a\",,,\n\"ALL\",\"/a\",,,\n"),
                None,
                None,
                &NodeTables::default(),
            ),
            Invalid {
                table: "litefile",
                line: 3,
                message: String::new(),
            },
            "listed twice",
        ),
        (
            "a node named twice",
            import_xcat(
                LF,
                None,
                Some(&format!(
                    "{SL}\"n1\",,\"10.0.0.1:/p\",,,\n\"n1\",,\"10.0.0.1:/q\",,,\n"
                )),
                &NodeTables::default(),
            ),
            Invalid {
                table: "statelite",
                line: 3,
                message: String::new(),
            },
            "statelite line 3: ",
        ),
        (
            "an empty statemnt",
            import_xcat(
                LF,
                None,
                Some(&format!("{SL}\"n1\",,,,,\n")),
                &NodeTables::default(),
            ),
            Invalid {
                table: "statelite",
                line: 2,
                message: String::new(),
            },
            "statelite line 2: ",
        ),
    ];
    for (what, got, want, text) in cases {
        let err = got.expect_err(what);
        match (&err, &want) {
            // The message is the config checker's; only the place is ours.
            (
                Invalid { table, line, .. },
                Invalid {
                    table: t, line: l, ..
                },
            ) => assert_eq!((table, line), (t, l), "{what}: {err}"),
            _ => assert_eq!(err, want, "{what}"),
        }
        assert!(
            err.to_string().contains(text),
            "{what}: {err:?} lacks {text:?}"
        );
    }
}

#[test]
fn the_first_table_with_a_problem_is_reported() {
    let bad_tree = format!("{LT}\"x\",,\"s:/t\",,,\n");
    let bad_nodes = format!("{SL},,,,,\n");
    let err = import_xcat(
        "",
        Some(&bad_tree),
        Some(&bad_nodes),
        &NodeTables::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "litefile line 1: expected tabdump's `#column,…` header line"
    );
    let err = import_xcat(
        LF,
        Some(&bad_tree),
        Some(&bad_nodes),
        &NodeTables::default(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ImportError::BadPriority {
            table: "litetree",
            ..
        }
    ));
}

/// Values that survive tabdump quoting: no control characters, no outer spaces.
fn value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9#\",/ $.=_-]{0,12}".prop_map(|s| s.trim().to_string())
}

fn quoted(fields: &[&str]) -> String {
    let q: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.is_empty() {
                String::new()
            } else {
                format!("\"{}\"", f.replace('"', "\"\""))
            }
        })
        .collect();
    q.join(",") + "\n"
}

proptest! {
    #[test]
    fn never_panics(litefile in "\\PC{0,200}", tree in "\\PC{0,100}", nodes in "[#a-z,\"\r\n ]{0,100}") {
        let _ = import_xcat(&litefile, Some(&tree), Some(&nodes), &NodeTables::default());
        let _ = import_xcat(&format!("{LF}{litefile}"), Some(&format!("{LT}{tree}")), Some(&format!("{SL}{nodes}")), &NodeTables::default());
        let _ = import_xcat(LF, Some(&format!("{LT}{nodes}")), Some(&format!("{SL}{nodes}")), &NodeTables::default());
    }

    #[test]
    fn quoted_rows_read_back_unchanged(
        rows in prop::collection::vec((value(), value(), 0..LITEFILE_OPTIONS.len(), value()), 0..8),
    ) {
        let mut text = LF.to_string();
        for (image, file, opt, comment) in &rows {
            text += &quoted(&[image, &format!("/{file}"), LITEFILE_OPTIONS[*opt], comment, ""]);
        }
        let want: Vec<LiteFile> = rows
            .iter()
            .map(|(image, file, opt, _)| LiteFile {
                image: image.clone(),
                file: format!("/{file}"),
                options: LITEFILE_OPTIONS[*opt].to_string(),
            })
            .collect();
        prop_assert_eq!(parse_litefile(&text).unwrap(), want);
    }

    #[test]
    fn whatever_imports_loads_into_the_same_rows(
        files in prop::collection::btree_set("[a-z]{1,6}/?", 0..6),
        images in prop::collection::vec(value(), 6),
        opts in prop::collection::vec(0..LITEFILE_OPTIONS.len(), 6),
        prios in prop::collection::vec((0u32..100, 0u32..100), 0..4),
        nodes in prop::collection::btree_set("[a-z][a-z0-9]{0,5}", 0..4),
    ) {
        let mut lf = LF.to_string();
        for (i, f) in files.iter().enumerate() {
            lf += &quoted(&[&images[i], &format!("/{f}"), LITEFILE_OPTIONS[opts[i]], "", ""]);
        }
        let mut lt = LT.to_string();
        for (a, b) in &prios {
            lt += &format!("{a}.{b},\"ALL\",\"srv:/t/{a}\",,,\n");
        }
        let mut sl = SL.to_string();
        for n in &nodes {
            sl += &quoted(&[n, "img", "srv:/state", "nolock", "", ""]);
        }
        // Config rules may reject a combination; what is printed must load.
        if let Ok(text) = import_xcat(&lf, Some(&lt), Some(&sl), &NodeTables::default()) {
            let conf = crate::config::parse(&text).unwrap();
            prop_assert_eq!(conf.statelite.litefile, parse_litefile(&lf).unwrap());
            prop_assert_eq!(conf.statelite.litetree, parse_litetree(&lt).unwrap());
            prop_assert_eq!(conf.statelite.node, parse_statelite(&sl).unwrap());
        }
    }
}

#[test]
fn persistent_con_imports_and_localdisk_is_refused_naming_the_line() {
    let header = "#image,file,options,comments,disable\n";
    let out = import_xcat(
        &format!("{header}\"ALL\",\"/etc/hosts\",\"persistent,con\",,\n"),
        None,
        None,
        &NodeTables::default(),
    )
    .expect("persistent,con imports");
    assert!(out.contains("options = \"persistent,con\""), "{out}");
    let refused = import_xcat(
        &format!(
            "{header}\"ALL\",\"/etc/hosts\",\"tmpfs\",,\n\"ALL\",\"/var/tmp/\",\"localdisk\",,\n"
        ),
        None,
        None,
        &NodeTables::default(),
    )
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "litefile line 3: localdisk is not supported: use sync mode for local disks"
    );
}

const NODELIST: &str = include_str!("../../../../../conf/xcat/nodelist-example.csv");
const NODERES: &str = include_str!("../../../../../conf/xcat/noderes-example.csv");
const NODETYPE: &str = include_str!("../../../../../conf/xcat/nodetype-example.csv");
const NODEPOS: &str = include_str!("../../../../../conf/xcat/nodepos-example.csv");
const VARIABLES: &str = "#priority,image,directory,comments,disable
\"1\",\"ALL\",\"$noderes.nfsserver:/trees/$nodetype.os/$nodepos.room\",,
";

fn all_node_tables() -> NodeTables<'static> {
    NodeTables {
        nodelist: Some(NODELIST),
        noderes: Some(NODERES),
        nodetype: Some(NODETYPE),
        nodepos: Some(NODEPOS),
    }
}

#[test]
fn node_tables_become_node_and_group_rows_with_attributes() {
    let text = import_xcat(LF, Some(VARIABLES), None, &all_node_tables()).unwrap();
    let conf = crate::config::parse(&text).unwrap();
    let names: Vec<&str> = conf.node.iter().filter_map(|n| n.name.as_deref()).collect();
    // cn003 is disabled; `compute` and `rack1` are groups in nodelist.
    assert_eq!(names, ["cn001", "cn002"]);
    let groups: Vec<&str> = conf.group.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["compute", "rack1"]);
    assert_eq!(conf.node[0].groups, ["compute", "rack1", "all"]);
    assert!(conf.node.iter().all(|n| n.mac.is_empty()));
    let attrs = |name: &str| {
        let (_, n) = conf.node_by_name(name).unwrap();
        conf.attributes(n)
    };
    let cn001 = attrs("cn001");
    assert_eq!(cn001["noderes.nfsserver"], "10.0.0.1");
    assert_eq!(cn001["nodetype.os"], "rhels8.6");
    assert_eq!(cn001["nodepos.room"], "r101");
    assert_eq!(cn001["nodepos.u"], "12");
    let cn002 = attrs("cn002");
    assert_eq!(cn002["noderes.nfsserver"], "10.0.0.2");
    assert_eq!(cn002["noderes.xcatmaster"], "10.0.0.1");
    // Comments are no variable.
    assert!(!cn002.keys().any(|k| k.contains("comments")), "{cn002:?}");
}

#[test]
fn without_nodelist_every_row_is_a_node() {
    let tables = NodeTables {
        nodepos: Some(NODEPOS),
        ..NodeTables::default()
    };
    let conf = crate::config::parse(&import_xcat(LF, None, None, &tables).unwrap()).unwrap();
    let names: Vec<&str> = conf.node.iter().filter_map(|n| n.name.as_deref()).collect();
    assert_eq!(names, ["cn001", "cn002", "rack1"]);
    assert!(conf.group.is_empty());
}

#[test]
fn node_table_problems_name_their_table_and_line() {
    // A variable some node has no value for: the boot of that node would fail.
    let tables = NodeTables {
        nodetype: None,
        ..all_node_tables()
    };
    let err = import_xcat(LF, Some(VARIABLES), None, &tables).unwrap_err();
    assert_eq!(
        err.to_string(),
        "litetree line 2: $nodetype.os has no value for node cn001 (table nodetype, column os)"
    );
    // The same node twice in one table.
    let twice = format!("{NODEPOS}\"cn002\",,,,,\"r9\",,,\n");
    let tables = NodeTables {
        nodepos: Some(&twice),
        ..all_node_tables()
    };
    let err = import_xcat(LF, None, None, &tables).unwrap_err();
    assert_eq!(
        err.to_string(),
        "nodepos line 5: an earlier row of this table has the same node"
    );
    // A name the config refuses is blamed on the row that brought it.
    let bad = "#node,os,arch,profile,provmethod,supportedarchs,nodetype,comments,disable\n\"a/b\",\"x\",,,,,,,\n";
    let tables = NodeTables {
        nodetype: Some(bad),
        ..all_node_tables()
    };
    let err = import_xcat(LF, None, None, &tables).unwrap_err();
    assert!(err.to_string().starts_with("nodetype line 2: "), "{err}");
    let err = import_xcat(
        LF,
        None,
        None,
        &NodeTables {
            noderes: Some("#servicenode,nfsserver\n"),
            ..NodeTables::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "noderes line 1: the header has no `node` column"
    );
}
