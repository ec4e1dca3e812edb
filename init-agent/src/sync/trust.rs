//! Signed standard roots: the manifest signed in minisign's format (ed25519,
//! so an admin can sign with the `minisign` tool too), its trusted comment
//! carrying the manifest's generation and a serial that only grows. A node
//! holding keys syncs only a manifest one of them signed, never an older
//! serial than its last verified copy, and installs a file only when its
//! contents hash to the signed value (see the engine's `write_temp`).
//!
//! The signature lives beside the manifest: `<manifest>.minisig`.

use std::fmt;
use std::io::Cursor;
use std::path::Path;

use ct_codecs::{Base64, Decoder};
use minisign::{PublicKey, PublicKeyBox, SecretKey, SignatureBox};

use super::manifest::{Manifest, ManifestError};

/// What the trusted comment starts with; the rest is `generation=G serial=N`.
const COMMENT_TAG: &str = "init-agent manifest";

/// What a manifest's file name gets for its signature's.
const SIGNATURE_SUFFIX: &str = ".minisig";

/// Where the signature of a manifest file is.
pub fn signature_path(manifest: &Path) -> std::path::PathBuf {
    let mut s = manifest.as_os_str().to_os_string();
    s.push(SIGNATURE_SUFFIX);
    s.into()
}

/// The same, for a path on a source (`/.init-agent/manifest`).
pub fn signature_name(manifest: &str) -> String {
    format!("{manifest}{SIGNATURE_SUFFIX}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("the manifest is not signed (no {0})")]
    Unsigned(String),
    #[error("the manifest's signature is unreadable: {0}")]
    Malformed(String),
    #[error("the manifest is signed by key {0}, which this node does not trust")]
    UnknownKey(String),
    #[error("the manifest's signature by key {0} does not verify: the manifest or its signed comment was altered")]
    BadSignature(String),
    #[error("the signed comment `{0}` is not an init-agent manifest's (generation=… serial=…)")]
    Comment(String),
    #[error("the signature is for generation {signed}, the manifest is generation {found}")]
    Generation { signed: String, found: String },
    #[error("serial {serial} is older than serial {local} of this node's last verified copy (a replayed manifest?)")]
    Rollback { serial: u64, local: u64 },
    #[error("no manifest: a node with trusted keys syncs only a signed manifest, it never walks the source unverified")]
    NoManifest,
}

/// One trusted public key and where it came from (for messages).
#[derive(Clone)]
pub struct Key {
    pub origin: String,
    key: PublicKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", key_id(self.key.keynum()), self.origin)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.key == other.key
    }
}

impl Key {
    /// A minisign public key: the file's text (untrusted comment, then the
    /// base64 line) or the base64 line alone.
    pub fn parse(text: &str, origin: &str) -> Result<Key, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| format!("{origin}: no public key in it"))?;
        let key = PublicKey::from_base64(line)
            .map_err(|e| format!("{origin}: not a minisign public key: {e}"))?;
        Ok(Key {
            origin: origin.to_string(),
            key,
        })
    }

    pub fn id(&self) -> String {
        key_id(self.key.keynum())
    }

    /// The base64 line, as `[trust] keys` takes it.
    pub fn base64(&self) -> String {
        self.key.to_base64()
    }
}

/// minisign's key id: the key number as a little-endian u64 in hex.
fn key_id(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    let n = keynum.len().min(8);
    b[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(b))
}

/// A sync that verifies: the keys it trusts, and whether a lower serial
/// than the last verified copy's is taken (an admin's deliberate rollback).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trust {
    pub keys: Vec<Key>,
    pub allow_rollback: bool,
}

/// What a verified signature says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signed {
    pub generation: String,
    pub serial: u64,
    pub key: String,
}

pub fn comment(generation: &str, serial: u64) -> String {
    format!("{COMMENT_TAG} generation={generation} serial={serial}")
}

/// The generation and serial of a trusted comment.
pub fn parse_comment(text: &str) -> Option<(String, u64)> {
    let rest = text.strip_prefix(COMMENT_TAG)?;
    let (mut generation, mut serial) = (None, None);
    for word in rest.split_whitespace() {
        match word.split_once('=')? {
            ("generation", g) if !g.is_empty() => generation = Some(g.to_string()),
            ("serial", s) => serial = Some(s.parse().ok()?),
            _ => return None,
        }
    }
    Some((generation?, serial?))
}

/// The serial of a signature without verifying it: only to choose the next
/// serial when signing again.
pub fn unverified_serial(sig: &str) -> Option<u64> {
    let b = SignatureBox::from_string(sig).ok()?;
    parse_comment(&b.trusted_comment().ok()?).map(|(_, s)| s)
}

/// Verifies `sig` (a .minisig file's text) over the manifest's bytes with the
/// trusted keys: before the manifest is even decoded, so that an altered one
/// is named as such.
pub fn verify(manifest: &[u8], sig: &str, keys: &[Key]) -> Result<Signed, TrustError> {
    let b = SignatureBox::from_string(sig).map_err(|e| TrustError::Malformed(e.to_string()))?;
    check_global_signature(sig)?;
    let id = key_id(b.keynum());
    let key = keys
        .iter()
        .find(|k| k.key.keynum() == b.keynum())
        .ok_or_else(|| TrustError::UnknownKey(id.clone()))?;
    // Legacy (non-prehashed) signatures are refused: minisign signs prehashed.
    minisign::verify(&key.key, &b, Cursor::new(manifest), true, false, false)
        .map_err(|_| TrustError::BadSignature(id.clone()))?;
    let text = b
        .trusted_comment()
        .map_err(|e| TrustError::Malformed(e.to_string()))?;
    let (generation, serial) = parse_comment(&text).ok_or(TrustError::Comment(text))?;
    Ok(Signed {
        generation,
        serial,
        key: id,
    })
}

/// minisign 0.10 decodes the signature file's fourth line (the signature
/// over the trusted comment) without checking its length, and its verify
/// then slices it as 64 bytes: a served short line would panic PID 1. Read
/// the same line the same way and refuse it first.
fn check_global_signature(sig: &str) -> Result<(), TrustError> {
    let line = sig.lines().nth(3).unwrap_or_default();
    match Base64::decode_to_vec(line.trim().as_bytes(), None) {
        Ok(bytes) if bytes.len() == GLOBAL_SIGNATURE_LEN => Ok(()),
        _ => Err(TrustError::Malformed(format!(
            "the trusted comment's signature is not {GLOBAL_SIGNATURE_LEN} bytes of base64"
        ))),
    }
}

/// An ed25519 signature's length.
const GLOBAL_SIGNATURE_LEN: usize = 64;

/// Why a signed manifest as read is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("{name}: {err}")]
    Trust { name: String, err: TrustError },
    /// Signed, yet not a manifest this agent reads.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// A manifest as read and its signature as read (None: absent), `name`
/// naming the manifest: decoded only once one of `keys` verified it, and
/// only when it is the generation the signature names. Every signed read
/// goes this way: a sync, the cluster file, `verify --key`.
pub fn open(
    name: &str,
    manifest: Option<&[u8]>,
    sig: Option<&[u8]>,
    keys: &[Key],
) -> Result<(Manifest, Signed), Refused> {
    let refuse = |err| Refused::Trust {
        name: name.to_string(),
        err,
    };
    let manifest = manifest.ok_or_else(|| refuse(TrustError::NoManifest))?;
    let sig = sig.ok_or_else(|| refuse(TrustError::Unsigned(signature_name(name))))?;
    let sig = std::str::from_utf8(sig).map_err(|_| {
        refuse(TrustError::Malformed(
            "not a minisign signature (not text)".into(),
        ))
    })?;
    let signed = verify(manifest, sig, keys).map_err(refuse)?;
    let m = super::manifest::decode(manifest, name)?;
    signed.check_generation(&m.generation).map_err(refuse)?;
    Ok((m, signed))
}

impl Signed {
    /// The decoded manifest is the generation the signature names.
    pub fn check_generation(&self, found: &str) -> Result<(), TrustError> {
        if self.generation != found {
            return Err(TrustError::Generation {
                signed: self.generation.clone(),
                found: found.to_string(),
            });
        }
        Ok(())
    }
}

/// A file read from a signed root before the sync (the cluster
/// configuration): the manifest must verify, and hold `rel` as a regular
/// file with exactly these contents.
pub fn check_file(
    manifest: &[u8],
    sig: &[u8],
    keys: &[Key],
    rel: &str,
    contents: &[u8],
) -> Result<Signed, String> {
    let (m, signed) =
        open("the manifest", Some(manifest), Some(sig), keys).map_err(|e| e.to_string())?;
    let entry = m
        .find(rel.trim_start_matches('/').as_bytes())
        .map(|i| &m.entries[i])
        .ok_or_else(|| format!("{rel} is not in the signed manifest"))?;
    if entry.meta.kind != super::meta::Kind::File
        || entry.hash != Some(super::digest::of_bytes(contents))
    {
        return Err(format!("{rel} is not what the signed manifest says"));
    }
    Ok(signed)
}

/// Refuses a serial lower than the last verified copy's.
pub fn check_serial(
    signed: &Signed,
    local: Option<u64>,
    allow_rollback: bool,
) -> Result<(), TrustError> {
    match local {
        Some(local) if signed.serial < local && !allow_rollback => Err(TrustError::Rollback {
            serial: signed.serial,
            local,
        }),
        _ => Ok(()),
    }
}

/// A secret key file (minisign's format); an encrypted one asks for its
/// password on the terminal.
pub fn load_secret_key(path: &Path) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(path)?;
    let boxed = minisign::SecretKeyBox::from_string(&text)?;
    match SecretKey::from_unencrypted_box(boxed.clone()) {
        Ok(sk) => Ok(sk),
        // Encrypted: minisign asks for the password on the terminal.
        Err(_) => Ok(SecretKey::from_box(boxed, None)?),
    }
}

/// The .minisig text for a manifest's bytes.
pub fn sign(
    manifest: &[u8],
    sk: &SecretKey,
    generation: &str,
    serial: u64,
) -> anyhow::Result<String> {
    let untrusted = format!("signature from init-agent, serial {serial}");
    let b = minisign::sign(
        None,
        sk,
        Cursor::new(manifest),
        Some(&comment(generation, serial)),
        Some(&untrusted),
    )?;
    Ok(b.into_string())
}

/// A new key pair: (secret key file text, public key file text, key). The
/// secret key is encrypted when `password` is given.
pub fn generate(password: Option<String>) -> anyhow::Result<(String, String, Key)> {
    let pair = match password {
        Some(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p))?,
        None => minisign::KeyPair::generate_unencrypted_keypair()?,
    };
    let id = key_id(pair.pk.keynum());
    let pk_text: String = pair.pk.to_box()?.to_string();
    let sk_text = pair
        .sk
        .to_box(Some(&format!("init-agent secret key {id}")))?
        .to_string();
    let key = Key {
        origin: "generated".into(),
        key: PublicKeyBox::from_string(&pk_text)?.into_public_key()?,
    };
    Ok((sk_text, pk_text, key))
}

#[cfg(test)]
mod tests;
