use super::*;

use std::time::{Duration, Instant};

const DIR: bool = true;
const FILE: bool = false;

fn set(patterns: &[&str]) -> PatternSet {
    PatternSet::new(patterns).unwrap()
}

/// (pattern, path, is_dir, expected)
const MATCHES: &[(&str, &[u8], bool, bool)] = &[
    // A leading `/` anchors at the transfer root.
    ("/etc/machine-id", b"etc/machine-id", FILE, true),
    ("/etc/machine-id", b"etc/machine-id", DIR, true),
    ("/etc/machine-id", b"x/etc/machine-id", FILE, false),
    ("/etc/machine-id", b"etc/machine-id2", FILE, false),
    ("/etc/machine-id", b"etc", DIR, false),
    (
        "/etc/ssh/ssh_host_*",
        b"etc/ssh/ssh_host_rsa_key",
        FILE,
        true,
    ),
    ("/etc/ssh/ssh_host_*", b"etc/ssh/ssh_host_", FILE, true),
    ("/etc/ssh/ssh_host_*", b"etc/ssh/sshd_config", FILE, false),
    ("/etc/ssh/ssh_host_*", b"etc/ssh/ssh_host_x/y", FILE, false),
    (
        "/etc/ssh/ssh_host_*",
        b"a/etc/ssh/ssh_host_rsa_key",
        FILE,
        false,
    ),
    ("/*", b"etc", DIR, true),
    ("/*", b"etc/hosts", FILE, false),
    // Unanchored: the trailing components, at any depth.
    ("*.pid", b"a.pid", FILE, true),
    ("*.pid", b"run/x.pid", FILE, true),
    ("*.pid", b"var/run/sshd/x.pid", FILE, true),
    ("*.pid", b"run/x.pid/y", FILE, false),
    ("*.pid", b"x.pidx", FILE, false),
    ("*.pid", b".pid", FILE, true),
    ("log/*.gz", b"var/log/a.gz", FILE, true),
    ("log/*.gz", b"log/b.gz", FILE, true),
    ("log/*.gz", b"var/xlog/a.gz", FILE, false),
    ("log/*.gz", b"log/sub/a.gz", FILE, false),
    ("hosts", b"etc/hosts", FILE, true),
    ("hosts", b"etc/hosts.allow", FILE, false),
    ("hosts", b"etc/myhosts", FILE, false),
    ("hosts", b"hosts/x", FILE, false),
    ("*", b"anything/at/all", FILE, true),
    // A trailing `/` matches directories only.
    ("cache/", b"cache", DIR, true),
    ("cache/", b"var/cache", DIR, true),
    ("cache/", b"var/cache", FILE, false),
    ("cache/", b"var/cache/x", DIR, false),
    ("/var/tmp/", b"var/tmp", DIR, true),
    ("/var/tmp/", b"var/tmp", FILE, false),
    ("**/", b"a/b", DIR, true),
    ("**/", b"a/b", FILE, false),
    // `*` and `?` never cross `/`; `**` does.
    ("/a*b", b"axxb", FILE, true),
    ("/a*b", b"ab", FILE, true),
    ("/a*b", b"ax/xb", FILE, false),
    ("/a?b", b"axb", FILE, true),
    ("/a?b", b"ab", FILE, false),
    ("/a?b", b"a/b", FILE, false),
    ("/a**b", b"ax/y/zb", FILE, true),
    ("/a**b", b"ab", FILE, true),
    ("a**b", b"x/ay/b", FILE, true),
    ("a**b", b"xa/b", FILE, false),
    ("/a/**/b", b"a/x/b", FILE, true),
    ("/a/**/b", b"a/x/y/b", FILE, true),
    ("/a/**/b", b"a/b", FILE, false),
    // `dir/**`: everything below, not dir itself; `dir/***`: dir too.
    ("/var/log/**", b"var/log/messages", FILE, true),
    ("/var/log/**", b"var/log/journal/x/y", FILE, true),
    ("/var/log/**", b"var/log", DIR, false),
    ("/var/log/**", b"var/logs/x", FILE, false),
    ("/tmp/***", b"tmp", DIR, true),
    ("/tmp/***", b"tmp/x", FILE, true),
    ("/tmp/***", b"tmp/x/y", DIR, true),
    ("/tmp/***", b"tmp", FILE, false),
    ("/tmp/***", b"tmpx", DIR, false),
    ("/tmp/***", b"a/tmp/x", FILE, false),
    ("cache/***", b"var/cache", DIR, true),
    ("cache/***", b"var/cache/x/y", FILE, true),
    ("cache/***", b"var/cachex/y", FILE, false),
    ("/a/***/", b"a/x", DIR, true),
    ("/a/***/", b"a/x", FILE, false),
    ("***", b"a/b", FILE, true),
    ("/a***", b"ab/c", FILE, true),
    // Byte classes.
    ("[a-c]?", b"ax", FILE, true),
    ("[a-c]?", b"cz", FILE, true),
    ("[a-c]?", b"dx", FILE, false),
    ("[a-c]?", b"a", FILE, false),
    ("[a-c]?", b"dir/bb", FILE, true),
    ("/[!a-c]", b"d", FILE, true),
    ("/[!a-c]", b"b", FILE, false),
    ("/[^a-c]", b"d", FILE, true),
    ("/[^a-c]", b"\xff", FILE, true),
    ("/x[!a]y", b"x/y", FILE, false),
    ("/[]a]", b"]", FILE, true),
    ("/[]a]", b"a", FILE, true),
    ("/[!]]", b"]", FILE, false),
    ("/[a-]", b"-", FILE, true),
    ("/[\\]]", b"]", FILE, true),
    ("/[a\\-z]", b"-", FILE, true),
    ("/[a\\-z]", b"b", FILE, false),
    ("/[[:digit:]x]", b"7", FILE, true),
    ("/[[:digit:]x]", b"x", FILE, true),
    ("/[[:digit:]x]", b"a", FILE, false),
    ("/[![:alpha:]]", b"1", FILE, true),
    ("/[![:alpha:]]", b"q", FILE, false),
    ("/a[[:punct:]]b", b"a/b", FILE, false),
    ("/a[[:punct:]]b", b"a.b", FILE, true),
    // `\` escapes.
    ("/a\\*", b"a*", FILE, true),
    ("/a\\*", b"ab", FILE, false),
    ("\\?", b"x/?", FILE, true),
    ("\\?", b"x/a", FILE, false),
    ("/\\[x]", b"[x]", FILE, true),
    ("/a\\\\b", b"a\\b", FILE, true),
    // An escaped `/` is still a separator, so `\/a` is anchored like `/a`.
    ("/a\\/b", b"a/b", FILE, true),
    ("\\/a", b"a", FILE, true),
    ("\\/a", b"x/a", FILE, false),
    // Bytes, not characters: invalid UTF-8 and newlines are ordinary.
    ("/bad*", b"bad\xff\xfe", FILE, true),
    ("*", b"\xff/\x80", FILE, true),
    ("/a?b", b"a\xffb", FILE, true),
    ("/caf?", "café".as_bytes(), FILE, false),
    ("/caf??", "café".as_bytes(), FILE, true),
    ("/café", "café".as_bytes(), FILE, true),
    ("*\n*", b"d/line1\nline2", FILE, true),
    ("/a?b", b"a\nb", FILE, true),
    ("/a\nb", b"a\nb", FILE, true),
    ("/a\nb", b"a\rb", FILE, false),
    // Case-sensitive; leading dots are not special.
    ("/ETC", b"etc", DIR, false),
    ("*", b".hidden", FILE, true),
];

#[test]
fn matches_table() {
    for &(pattern, path, is_dir, expected) in MATCHES {
        assert_eq!(
            set(&[pattern]).matches(path, is_dir),
            expected,
            "{pattern:?} vs {:?} (dir: {is_dir})",
            String::from_utf8_lossy(path)
        );
    }
}

#[test]
fn errors_table() {
    type Make = fn(String) -> PatternError;
    let root: Make = |pattern| PatternError::Root { pattern };
    let empty_component: Make = |pattern| PatternError::EmptyComponent { pattern };
    let unclosed: Make = |pattern| PatternError::UnclosedBracket { pattern };
    let backslash: Make = |pattern| PatternError::TrailingBackslash { pattern };
    let nul: Make = |pattern| PatternError::Nul { pattern };
    let cases: &[(&str, Make)] = &[
        ("/", root),
        ("//", root),
        ("/***", root),
        ("/***/", root),
        ("///", empty_component),
        ("a//b", empty_component),
        ("//a", empty_component),
        ("a//", empty_component),
        ("a\\//b", empty_component),
        ("[abc", unclosed),
        ("/x/[", unclosed),
        ("[!", unclosed),
        ("[]", unclosed),
        ("[a\\", unclosed),
        ("[[:digit:]", unclosed),
        ("[[:digit", unclosed),
        ("a\\", backslash),
        ("/etc/\\", backslash),
        ("a\0b", nul),
        ("\0", nul),
    ];
    for (pattern, make) in cases {
        assert_eq!(
            validate(pattern),
            Err(make(pattern.to_string())),
            "{pattern:?}"
        );
    }
    assert_eq!(validate(""), Err(PatternError::Empty));
    for pattern in [
        "[a/b]",
        "[!/]",
        "[.-0]",
        "[é]",
        "[a-\u{ff}]",
        "[z-a]",
        "[[:foo:]]",
    ] {
        assert!(
            matches!(validate(pattern), Err(PatternError::InvalidBracket { .. })),
            "{pattern:?}: {:?}",
            validate(pattern)
        );
    }
}

#[test]
fn valid_patterns_validate() {
    for &(pattern, ..) in MATCHES {
        assert_eq!(validate(pattern), Ok(()), "{pattern:?}");
    }
    for pattern in [
        "**",
        "/**",
        "a/**",
        " ",
        "-",
        "[a-]",
        "[z-z]",
        "é*",
        "[[:space:]]",
    ] {
        assert_eq!(validate(pattern), Ok(()), "{pattern:?}");
    }
}

#[test]
fn error_messages_name_the_pattern() {
    for pattern in ["/", "a//b", "[abc", "x\\", "a\0b", "[z-a]", "[é]"] {
        let message = validate(pattern).unwrap_err().to_string();
        assert!(message.contains(&format!("{pattern:?}")), "{message}");
    }
    assert_eq!(
        validate("[a/]").unwrap_err().to_string(),
        r#"pattern "[a/]": '[...]' holds '/'"#
    );
    // Newlines are escaped, so the message stays on one line.
    let message = validate("a\n[").unwrap_err().to_string();
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn set_matches_if_any_pattern_does() {
    let given = ["/etc/machine-id", "*.pid", "cache/"];
    let s = PatternSet::new(&given).unwrap();
    assert_eq!(s.patterns(), given);
    assert!(!s.is_empty());
    assert!(s.matches(b"etc/machine-id", FILE));
    assert!(s.matches(b"run/a.pid", FILE));
    assert!(s.matches(b"home/u/cache", DIR));
    assert!(!s.matches(b"home/u/cache", FILE));
    assert!(!s.matches(b"etc/hosts", FILE));
}

#[test]
fn owned_strings_are_accepted() {
    let given = vec!["/a".to_string(), "b/".to_string()];
    let s = PatternSet::new(&given).unwrap();
    assert_eq!(s.patterns(), given);
}

#[test]
fn empty_set_matches_nothing() {
    let none: [&str; 0] = [];
    for s in [PatternSet::default(), PatternSet::new(&none).unwrap()] {
        assert!(s.is_empty());
        assert!(s.patterns().is_empty());
        assert!(!s.matches(b"a", FILE));
    }
}

#[test]
fn the_root_is_never_matched() {
    let s = set(&["**", "*", "/**", "**/"]);
    assert!(!s.matches(b"", DIR));
    assert!(!s.matches(b"", FILE));
}

#[test]
fn new_fails_on_the_first_bad_pattern() {
    assert_eq!(
        PatternSet::new(&["/ok", "[bad", "/"]).unwrap_err(),
        PatternError::UnclosedBracket {
            pattern: "[bad".into()
        }
    );
}

#[test]
fn stars_are_not_exponential() {
    let long_a = vec![b'a'; 4000];
    let mut slashed = b"a/".repeat(2000);
    slashed.pop();
    let start = Instant::now();
    let s = set(&[
        "*a*a*a*a*a*a*b",
        "/*a*a*a*a*a*a*b",
        "**a**a**a**a**a**a**b",
        "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b/***",
    ]);
    for path in [&long_a, &slashed] {
        assert!(!s.matches(path, FILE));
    }
    assert!(set(&["*a*a*a*a*a*a*a"]).matches(&long_a, FILE));
    assert!(set(&["**a**a**a**a"]).matches(&slashed, FILE));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// Exhaustive backtracking over the same tokens: exponential, fine for tiny inputs.
fn reference_matches(pattern: &Pattern, path: &[u8], is_dir: bool) -> bool {
    fn tokens_match(tokens: &[Token], path: &[u8]) -> bool {
        let Some((token, rest)) = tokens.split_first() else {
            return path.is_empty();
        };
        let byte_ok = |b: u8| match token {
            Token::Byte(t) => *t == b,
            Token::AnyByte => b != b'/',
            Token::Class(set) => set.contains(b),
            _ => false,
        };
        match token {
            Token::Star => (0..=path.len())
                .take_while(|&n| !path[..n].contains(&b'/'))
                .any(|n| tokens_match(rest, &path[n..])),
            Token::DoubleStar | Token::TripleStar => {
                (0..=path.len()).any(|n| tokens_match(rest, &path[n..]))
            }
            _ => path
                .split_first()
                .is_some_and(|(&b, tail)| byte_ok(b) && tokens_match(rest, tail)),
        }
    }
    let boundary = |i: usize| i == path.len() || path[i] == b'/';
    let mut starts =
        (0..path.len()).filter(|&i| i == 0 || (!pattern.anchored && path[i - 1] == b'/'));
    let type_ok = is_dir || !pattern.dir_only;
    starts.any(|start| {
        (start..=path.len())
            .filter(|&end| boundary(end))
            .any(|end| {
                let whole = end == path.len();
                let allowed = if whole {
                    is_dir || !(pattern.dir_only || pattern.with_subtree)
                } else {
                    pattern.with_subtree && type_ok
                };
                allowed && tokens_match(&pattern.tokens, &path[start..end])
            })
    })
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_text(pattern in "\\PC{0,40}", path in proptest::collection::vec(any::<u8>(), 0..64), is_dir: bool) {
            if let Ok(s) = PatternSet::new(&[&pattern]) {
                let _ = s.matches(&path, is_dir);
            }
            prop_assert_eq!(validate(&pattern).is_ok(), PatternSet::new(&[&pattern]).is_ok());
        }

        /// Glob syntax is where the parser has cases; arbitrary bytes are where the
        /// matcher has them.
        #[test]
        fn never_panics_on_glob_syntax(
            pattern in "[ab/*?!^\\[\\]:\\-\\\\é\n]{0,24}",
            path in proptest::collection::vec(any::<u8>(), 0..64),
            is_dir: bool,
        ) {
            if let Ok(s) = PatternSet::new(&[&pattern]) {
                let _ = s.matches(&path, is_dir);
            }
        }

        /// The NFA agrees with exhaustive backtracking.
        #[test]
        fn agrees_with_backtracking(
            pattern in "/?([ab*?/]|\\*\\*|\\[!?a\\]|\\\\\\*){1,8}(/|/\\*\\*\\*)?",
            components in proptest::collection::vec("[ab*]{1,3}", 1..5),
            is_dir: bool,
        ) {
            let path = components.join("/");
            if let Ok(compiled) = Pattern::compile(&pattern) {
                let s = PatternSet::new(&[&pattern]).unwrap();
                prop_assert_eq!(
                    s.matches(path.as_bytes(), is_dir),
                    reference_matches(&compiled, path.as_bytes(), is_dir),
                    "{:?} vs {:?}", pattern, path
                );
            }
        }

        /// Escaping every character and anchoring gives a literal match.
        #[test]
        fn escaped_paths_match_only_themselves(
            components in proptest::collection::vec("[a-c*?\\[\\]\\\\!]{1,3}", 1..4),
            other in proptest::collection::vec("[a-c*?\\[\\]\\\\!]{1,3}", 1..4),
        ) {
            let path = components.join("/");
            let escaped: String = path
                .chars()
                .flat_map(|c| if c == '/' { vec![c] } else { vec!['\\', c] })
                .collect();
            let s = PatternSet::new(&[format!("/{escaped}")]).unwrap();
            prop_assert!(s.matches(path.as_bytes(), false));
            let other = other.join("/");
            prop_assert_eq!(s.matches(other.as_bytes(), false), other == path);
        }
    }
}
