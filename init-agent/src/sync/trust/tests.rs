use super::*;

fn pair() -> (SecretKey, Key) {
    let (sk, pk, key) = generate(None).unwrap();
    let sk =
        SecretKey::from_unencrypted_box(minisign::SecretKeyBox::from_string(&sk).unwrap()).unwrap();
    assert_eq!(Key::parse(&pk, "pub").unwrap(), key);
    (sk, key)
}

#[test]
fn a_signed_manifest_verifies_with_its_key_and_nothing_else() {
    let (sk, key) = pair();
    let (_, other) = pair();
    let body = b"IAMANIF\0 records";
    let sig = sign(body, &sk, "g1", 7).unwrap();
    let ok = verify(body, &sig, &[other.clone(), key.clone()]).unwrap();
    assert_eq!(
        (ok.generation.as_str(), ok.serial, ok.key.clone()),
        ("g1", 7, key.id())
    );
    assert_eq!(
        verify(body, &sig, &[other]),
        Err(TrustError::UnknownKey(key.id()))
    );
    // One byte of the manifest changed.
    let mut altered = body.to_vec();
    altered[9] ^= 1;
    assert_eq!(
        verify(&altered, &sig, std::slice::from_ref(&key)),
        Err(TrustError::BadSignature(key.id()))
    );
    // The signature names another generation than the manifest carries.
    assert_eq!(ok.check_generation("g1"), Ok(()));
    assert!(matches!(
        ok.check_generation("g2"),
        Err(TrustError::Generation { .. })
    ));
    assert!(matches!(
        verify(body, "not a signature", &[key]),
        Err(TrustError::Malformed(_))
    ));
}

#[test]
fn a_short_trusted_comment_signature_is_refused_not_a_panic() {
    // Found by the fuzzer: minisign 0.10 slices this line as 64 bytes.
    let (sk, key) = pair();
    let body = b"manifest";
    let sig = sign(body, &sk, "g1", 3).unwrap();
    let mut lines: Vec<&str> = sig.lines().collect();
    for short in ["AAAAAAAAAAAA", "", "not base64!"] {
        lines[3] = short;
        assert!(matches!(
            verify(body, &lines.join("\n"), std::slice::from_ref(&key)),
            Err(TrustError::Malformed(_))
        ));
    }
    // The fuzzer's input as its target reads it, with the seed's key.
    let seed = include_bytes!("../../../../fuzz/seeds/signature/short-global-signature");
    let (len, rest) = seed.split_at(2);
    let len = usize::from(u16::from_be_bytes([len[0], len[1]])).min(rest.len());
    let (sig, manifest) = rest.split_at(len);
    let key = Key::parse(
        "RWStgbsKr1NrkWHtvsAQStb59Qccauo7a8uKAWLCgJfTabdI0fboboVQ",
        "fuzz",
    )
    .unwrap();
    assert!(matches!(
        open("M", Some(manifest), Some(sig), &[key]),
        Err(Refused::Trust {
            err: TrustError::Malformed(_),
            ..
        })
    ));
}

#[test]
fn an_edited_trusted_comment_breaks_the_signature() {
    let (sk, key) = pair();
    let body = b"manifest";
    let sig = sign(body, &sk, "g1", 3).unwrap();
    // The trusted comment line, with a higher serial put in by hand.
    let forged = sig.replace("serial=3", "serial=9");
    assert_ne!(forged, sig);
    assert_eq!(
        verify(body, &forged, std::slice::from_ref(&key)),
        Err(TrustError::BadSignature(key.id()))
    );
    assert_eq!(unverified_serial(&sig), Some(3));
}

#[test]
fn serials_only_grow_unless_rollback_is_allowed() {
    let s = Signed {
        generation: "g".into(),
        serial: 4,
        key: "K".into(),
    };
    assert_eq!(check_serial(&s, None, false), Ok(()));
    assert_eq!(check_serial(&s, Some(4), false), Ok(()));
    assert_eq!(
        check_serial(&s, Some(5), false),
        Err(TrustError::Rollback {
            serial: 4,
            local: 5
        })
    );
    assert_eq!(check_serial(&s, Some(5), true), Ok(()));
}

#[test]
fn comments_parse_strictly() {
    assert_eq!(parse_comment(&comment("abc", 12)), Some(("abc".into(), 12)));
    for bad in [
        "timestamp:1700000000",
        "init-agent manifest generation=abc",
        "init-agent manifest serial=1",
        "init-agent manifest generation=abc serial=x",
        "init-agent manifest generation=abc serial=1 extra=2",
    ] {
        assert_eq!(parse_comment(bad), None, "{bad}");
    }
}

#[test]
fn public_keys_parse_from_the_file_or_the_line_and_name_bad_ones() {
    let (_, pk, key) = generate(None).unwrap();
    let line = pk.lines().nth(1).unwrap();
    assert_eq!(Key::parse(line, "line").unwrap(), key);
    assert_eq!(key.base64(), line);
    assert!(Key::parse("", "empty")
        .unwrap_err()
        .contains("empty: no public key"));
    assert!(Key::parse("RWQnope", "k.pub")
        .unwrap_err()
        .starts_with("k.pub: not a minisign public key"));
}

#[test]
fn a_file_read_before_the_sync_must_be_as_the_signed_manifest_has_it() {
    let dir = std::env::temp_dir().join(format!("ia-trust-file-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc/init-agent")).unwrap();
    let text = b"[boot]\nmode = \"sync\"\n";
    std::fs::write(dir.join("etc/init-agent/cluster.toml"), text).unwrap();
    let m = crate::sync::manifest::build(&dir, &Default::default()).unwrap();
    let bytes = crate::sync::manifest::encode(&m);
    let (sk, key) = pair();
    let sig = sign(&bytes, &sk, &m.generation, 1).unwrap();
    let keys = std::slice::from_ref(&key);
    let path = "/etc/init-agent/cluster.toml";
    assert_eq!(
        check_file(&bytes, sig.as_bytes(), keys, path, text)
            .unwrap()
            .serial,
        1
    );
    let e = check_file(
        &bytes,
        sig.as_bytes(),
        keys,
        path,
        b"[boot]\nmode = \"nfsroot\"\n",
    )
    .unwrap_err();
    assert_eq!(
        e,
        "/etc/init-agent/cluster.toml is not what the signed manifest says"
    );
    let e = check_file(&bytes, sig.as_bytes(), keys, "/etc/other.toml", text).unwrap_err();
    assert_eq!(e, "/etc/other.toml is not in the signed manifest");
    // A directory of that name is no file.
    let e = check_file(&bytes, sig.as_bytes(), keys, "/etc/init-agent", b"").unwrap_err();
    assert!(e.contains("is not what the signed manifest says"), "{e}");
    let (_, other) = pair();
    let e = check_file(&bytes, sig.as_bytes(), &[other], path, text).unwrap_err();
    assert!(e.contains("does not trust"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open_decodes_a_manifest_only_once_its_signature_verified() {
    let dir = std::env::temp_dir().join(format!("ia-trust-open-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/motd"), "hi\n").unwrap();
    let m = crate::sync::manifest::build(&dir, &Default::default()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let bytes = crate::sync::manifest::encode(&m);
    let (sk, key) = pair();
    let keys = std::slice::from_ref(&key);
    let sig = sign(&bytes, &sk, &m.generation, 3).unwrap();
    let (got, signed) = open("M", Some(&bytes), Some(sig.as_bytes()), keys).unwrap();
    assert_eq!((got.generation, signed.serial), (m.generation.clone(), 3));
    let refused = |r: Result<(Manifest, Signed), Refused>| r.err().unwrap().to_string();
    assert_eq!(
        refused(open("M", None, Some(sig.as_bytes()), keys)),
        format!("M: {}", TrustError::NoManifest)
    );
    assert_eq!(
        refused(open("M", Some(&bytes), None, keys)),
        "M: the manifest is not signed (no M.minisig)"
    );
    assert!(refused(open("M", Some(&bytes), Some(&[0xff, 0xfe]), keys)).contains("not text"));
    // Altered after signing: refused by the signature, before any decoding.
    let mut altered = bytes.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    assert!(
        refused(open("M", Some(&altered), Some(sig.as_bytes()), keys)).contains("does not verify")
    );
    // Signed for another generation than the manifest holds.
    let other = sign(&bytes, &sk, "g0", 4).unwrap();
    assert!(
        refused(open("M", Some(&bytes), Some(other.as_bytes()), keys))
            .contains("the signature is for generation g0")
    );
    // Signed, yet no manifest of ours.
    let junk = b"not a manifest";
    let junk_sig = sign(junk, &sk, "g0", 5).unwrap();
    assert!(
        refused(open("M", Some(junk), Some(junk_sig.as_bytes()), keys))
            .contains("M: not an init-agent manifest")
    );
}

proptest::proptest! {
    /// No signature file, key file or trusted comment a server or an admin
    /// can hand over makes the parsers panic; only a real signature opens.
    #[test]
    fn signature_key_and_comment_parsers_never_panic(
        sig in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        text in ".{0,200}",
    ) {
        let (_, key) = pair();
        let keys = std::slice::from_ref(&key);
        proptest::prop_assert!(open("M", Some(b"IAMANIF\0"), Some(&sig), keys).is_err());
        let as_text = String::from_utf8_lossy(&sig);
        let _ = verify(b"IAMANIF\0", &as_text, keys);
        let _ = Key::parse(&as_text, "fuzz");
        let _ = Key::parse(&text, "fuzz");
        let _ = parse_comment(&text);
        let _ = parse_comment(&format!("{COMMENT_TAG} {text}"));
    }
}
