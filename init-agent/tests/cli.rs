//! Drives the real `init-agent` binary: exit codes and output of explain and check-config.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_init-agent");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/init-agent.toml");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("runs the binary");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn explain_json_is_one_object_and_exit_status_follows_errors() {
    let (code, out) = run(&[
        "explain",
        "--json",
        "--cmdline",
        "root=nfs4:10.0.2.2:/export ip=dhcp BOOTIF=01-52-54-00-12-34-56",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["net"]["mac"], "52:54:00:12:34:56");
    assert_eq!(v["source"]["version"], 4);

    let (code, out) = run(&[
        "explain",
        "--json",
        "--cmdline",
        "root=nfs4:10.0.2.2:/export BOOTIF=nonsense",
    ]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["errors"][0].as_str().unwrap().contains("BOOTIF=nonsense"));
}

#[test]
fn explain_text_with_the_example_config() {
    let (code, out) = run(&[
        "explain",
        "--config",
        EXAMPLE,
        "--cmdline",
        "BOOTIF=52:54:00:12:34:01",
    ]);
    assert_eq!(code, 0, "{out}");
    for needle in [
        "mode:      sync",
        "cn001",
        "/dev/sda gpt",
        "CDSL: bind /cluster/cdsl/1 on /cdsl.local",
        "switch_root",
    ] {
        assert!(out.contains(needle), "{needle} not in:\n{out}");
    }
}

#[test]
fn explain_reports_a_broken_config_named_on_the_cmdline() {
    let dir = std::env::temp_dir().join(format!("ia-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[boot]\nmode = \"fast\"\n").unwrap();
    let (code, out) = run(&[
        "explain",
        "--cmdline",
        &format!("root=nfs:s:/r initagent.config={}", bad.display()),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{}:2:8", bad.display())), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_reports_each_error_with_position() {
    let dir = std::env::temp_dir().join(format!("ia-cli-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[boot]\nmode = \"fast\"\ntimeout = -1\n\n[[node]]\nmac = \"xx\"\n",
    )
    .unwrap();
    let (code, out) = run(&["check-config", EXAMPLE, bad.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].ends_with("init-agent.toml: ok"));
    let b = bad.display();
    assert!(lines[1].starts_with(&format!("{b}:2:8: ")), "{out}");
    assert!(lines[2].starts_with(&format!("{b}:3:11: ")), "{out}");
    assert!(lines[3].starts_with(&format!("{b}:6:7: ")), "{out}");
    let (code, _) = run(&["check-config", EXAMPLE]);
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn statelite_liteimg_dry_runs_prepares_then_has_nothing_to_change() {
    let dir = std::env::temp_dir().join(format!("ia-cli-liteimg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let img = dir.join("img");
    std::fs::create_dir_all(img.join("etc")).unwrap();
    std::fs::write(img.join("etc/motd"), "image motd\n").unwrap();
    // The tables in the image's own /etc/init-agent.toml (no --config).
    std::fs::write(
        img.join("etc/init-agent.toml"),
        "[[statelite.litefile]]\nfile = \"/etc/motd\"\noptions = \"\"\n",
    )
    .unwrap();
    let root = img.to_str().unwrap();
    let liteimg =
        |extra: &[&str]| run(&[&["statelite", "liteimg", "--root", root], extra].concat());
    let (code, out) = liteimg(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("prepare link /etc/motd") && out.contains("dry run"),
        "{out}"
    );
    assert!(!img.join(".default").exists());
    let (code, out) = liteimg(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("record the link entries in /.statelite/liteimg.json: /etc/motd"),
        "{out}"
    );
    let (code, out) = liteimg(&[]);
    assert_eq!(
        (code, out.trim_end()),
        (
            0,
            format!("liteimg: {root} is prepared already, nothing to change").as_str()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn explain_names_the_node_row_and_the_row_dhcp_would_have_named() {
    let statelite = "root=nfs:10.0.0.1:/srv/root initagent.mode=statelite";
    let (code, out) = run(&[
        "explain",
        "--config",
        EXAMPLE,
        "--cmdline",
        &format!("{statelite} NODE=cn002"),
    ]);
    assert_eq!(code, 0, "{out}");
    for needle in [
        "node row:  [[node]] row 3 (cn002), matched by NODE=",
        "nodetype.os=rocky9.4",
        "litetrees 10.0.0.1:/statelite/litetree/cn002, 10.0.0.1:/statelite/rocky9.4/r101",
    ] {
        assert!(out.contains(needle), "{needle} not in:\n{out}");
    }
    // Named by DHCP only: the row is not used, and explain says which it is.
    let (code, out) = run(&[
        "explain",
        "--config",
        EXAMPLE,
        "--cmdline",
        statelite,
        "--dhcp",
        "hostname=cn002",
    ]);
    assert_eq!(code, 1, "{out}");
    for needle in [
        "node row:  none of the [[node]] rows",
        "the DHCP host name cn002 names [[node]] row 3, which this boot does not use",
        "$noderes.nfsserver has no value for node (DHCP host name)",
    ] {
        assert!(out.contains(needle), "{needle} not in:\n{out}");
    }
}

#[test]
fn import_xcat_turns_node_tables_into_node_and_group_rows() {
    let xcat = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/xcat");
    let table = |name: &str| format!("{xcat}/{name}-example.csv");
    let (code, out) = run(&[
        "statelite",
        "import-xcat",
        "--litefile",
        &format!("{xcat}/litefile-alt.csv"),
        "--nodelist",
        &table("nodelist"),
        "--noderes",
        &table("noderes"),
        "--nodetype",
        &table("nodetype"),
        "--nodepos",
        &table("nodepos"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[[group]]\nname = \"compute\""), "{out}");
    assert!(out.contains("[[node]]\nname = \"cn002\""), "{out}");
}

#[test]
fn sync_makes_a_missing_destination_as_rsync_does_but_not_its_parents() {
    let dir = std::env::temp_dir().join(format!("ia-cli-sync-dst-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src/etc")).unwrap();
    std::fs::write(dir.join("src/etc/motd"), "hello\n").unwrap();
    let src = dir.join("src");
    let dst = dir.join("dst");
    let (code, out) = run(&["sync", src.to_str().unwrap(), dst.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("created directory"), "{out}");
    assert_eq!(
        std::fs::read_to_string(dst.join("etc/motd")).unwrap(),
        "hello\n"
    );
    // A dry run writes nothing, not even DST.
    let dry = dir.join("dry");
    let (code, out) = run(&[
        "sync",
        "--dry-run",
        src.to_str().unwrap(),
        dry.to_str().unwrap(),
    ]);
    assert!(!dry.exists(), "{code} {out}");
    // Missing parents are named, not made.
    let deep = dir.join("no/such/dst");
    let (code, out) = run(&["sync", src.to_str().unwrap(), deep.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("creating") && !dir.join("no").exists(),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    // Nobody reads: the first write meets a closed pipe.
    drop(reader);
    let out = Command::new(BIN)
        .args(["explain", "--cmdline", "root=nfs:10.0.0.1:/srv/root"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Killed by SIGPIPE (13 on Linux), as `cat` would be.
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
}
