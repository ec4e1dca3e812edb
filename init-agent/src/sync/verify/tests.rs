use super::*;

fn diff(what: What, found: Option<&str>, expected: Option<&str>, below: usize) -> String {
    Difference {
        path: "/usr/bin/su".into(),
        what,
        found: found.map(Into::into),
        expected: expected.map(Into::into),
        below,
    }
    .to_string()
}

#[test]
fn a_difference_is_one_line_naming_both_sides() {
    assert_eq!(
        diff(What::Mode, Some("4755"), Some("0755"), 0),
        "mode /usr/bin/su 4755, manifest 0755"
    );
    assert_eq!(
        diff(What::Missing, None, Some("directory"), 3),
        "missing /usr/bin/su (directory) and 3 entries below"
    );
    assert_eq!(
        diff(What::Extra, Some("file"), None, 0),
        "extra /usr/bin/su (file)"
    );
}

#[test]
fn xattr_differences_name_only_what_differs() {
    let x = |pairs: &[(&str, &[u8])]| {
        Xattrs(
            pairs
                .iter()
                .map(|(n, v)| (std::ffi::CString::new(*n).unwrap(), v.to_vec()))
                .collect(),
        )
    };
    let (found, expected) = xattr_difference(
        &x(&[("user.a", b"1"), ("user.b", b"2")]),
        &x(&[("user.a", b"1")]),
    );
    assert!(found.starts_with("user.b="), "{found}");
    assert_eq!(expected, "(none)");
}
