use super::*;
use proptest::prelude::*;

fn meta(kind: Kind, size: u64) -> Meta {
    Meta {
        kind,
        perm: 0o755,
        uid: 0,
        gid: 0,
        size,
        mtime_sec: 1_700_000_000,
        mtime_nsec: 5,
        rdev: 0,
        nlink: 1,
        dev: 0,
        ino: 0,
        blocks: size.div_ceil(512),
        ctime_sec: 0,
    }
}

fn e(rel: &str, kind: Kind, end: usize) -> Entry {
    Entry {
        rel: rel.as_bytes().to_vec(),
        meta: meta(kind, if kind == Kind::File { 3 } else { 0 }),
        target: if kind == Kind::Symlink {
            b"../x".to_vec()
        } else {
            Vec::new()
        },
        xattrs: Xattrs::default(),
        hash: (kind == Kind::File).then_some([7; 16]),
        end,
    }
}

/// / ; /etc/ ; /etc/a ; /etc/ssh/ ; /etc/ssh/k ; /usr ; /z -> ../x
fn sample() -> Manifest {
    let mut entries = vec![
        e("", Kind::Dir, 7),
        e("etc", Kind::Dir, 5),
        e("etc/a", Kind::File, 3),
        e("etc/ssh", Kind::Dir, 5),
        e("etc/ssh/k", Kind::File, 5),
        e("usr", Kind::File, 6),
        e("z", Kind::Symlink, 7),
    ];
    entries[4].xattrs = Xattrs(vec![(c"security.capability".to_owned(), vec![1, 2, 3])]);
    let mut m = Manifest {
        generation: String::new(),
        entries,
    };
    m.generation = generation_of(&records(&m));
    m
}

#[test]
fn roundtrip_keeps_every_field() {
    let m = sample();
    let back = decode(&encode(&m), "m").unwrap();
    assert_eq!(back, m);
    assert_eq!(m.generation.len(), 32);
}

#[test]
fn children_and_find_follow_the_tree() {
    let m = sample();
    assert_eq!(m.children(0).collect::<Vec<_>>(), vec![1, 5, 6]);
    assert_eq!(m.children(1).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(m.find(b"etc/ssh/k"), Some(4));
    assert_eq!(m.find(b"etc/nope"), None);
    assert_eq!(m.name(4), b"k");
}

#[test]
fn the_generation_follows_the_content() {
    let a = sample();
    let mut b = sample();
    b.entries[2].meta.mtime_nsec += 1;
    assert_ne!(generation_of(&records(&a)), generation_of(&records(&b)));
    assert_eq!(generation_of(&records(&a)), sample().generation);
}

#[test]
fn any_flipped_byte_fails_the_integrity_check() {
    let bytes = encode(&sample());
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        assert!(
            decode(&bad, "m").is_err(),
            "byte {i} flipped went unnoticed"
        );
    }
    assert!(matches!(
        decode(&bytes[..bytes.len() - 1], "m"),
        Err(ManifestError::Integrity(_))
    ));
    assert!(matches!(
        decode(b"#!/bin/sh\n", "m"),
        Err(ManifestError::NotManifest(_))
    ));
}

/// Re-seals a body so only the structural checks can reject it.
fn sealed(body: &Body) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend(postcard::to_allocvec(body).unwrap());
    let h = blake3::hash(&out);
    out.extend_from_slice(h.as_bytes());
    out
}

#[test]
fn another_format_version_is_rejected_by_name() {
    let m = sample();
    let body = Body {
        version: FORMAT_VERSION + 1,
        generation: m.generation.clone(),
        records: records(&m),
    };
    let err = decode(&sealed(&body), "m").unwrap_err();
    assert!(matches!(err, ManifestError::Version { found, .. } if found == FORMAT_VERSION + 1));
}

#[test]
fn well_sealed_but_hostile_trees_are_rejected() {
    let m = sample();
    type Mutation = Box<dyn Fn(&mut Vec<Record>)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("dot-dot component", Box::new(|r| r[2].suffix = b"/..")),
        (
            "children out of order",
            Box::new(|r| {
                r[5].suffix = b"aaa";
                r[5].prefix = 0;
            }),
        ),
        (
            "prefix beyond the previous path",
            Box::new(|r| r[3].prefix = 99),
        ),
        ("file with children", Box::new(|r| r[2].descendants = 1)),
        (
            "subtree past its parent",
            Box::new(|r| r[3].descendants = 5),
        ),
        ("root not spanning", Box::new(|r| r[0].descendants = 2)),
        ("unknown type", Box::new(|r| r[6].kind = b'?')),
        ("slash inside a name", Box::new(|r| r[6].suffix = b"a/b")),
        ("NUL in a name", Box::new(|r| r[6].suffix = b"a\0")),
    ];
    for (what, mutate) in cases {
        let mut recs = records(&m);
        mutate(&mut recs);
        let body = Body {
            version: FORMAT_VERSION,
            generation: m.generation.clone(),
            records: recs,
        };
        assert!(decode(&sealed(&body), "m").is_err(), "{what} accepted");
    }
}

proptest! {
    #[test]
    fn decode_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes, "fuzz");
        let mut sealed = MAGIC.to_vec();
        sealed.extend_from_slice(&bytes);
        let h = blake3::hash(&sealed);
        sealed.extend_from_slice(h.as_bytes());
        let _ = decode(&sealed, "fuzz");
    }
}
