//! Tokens: a compact binary payload sealed with Fernet (AES-128-CBC + HMAC-SHA256), under keys
//! from a rotating key repository, as Keystone's fernet provider does.
//!
//! Invariants:
//! - Validating a token needs only the keys and the in-memory model: no database row.
//! - The key repository holds `0` (staged: the next primary) and `1..=n`, the highest number
//!   being the primary that seals new tokens; every key in it can open tokens, so after a
//!   rotation older tokens stay valid until their key ages out of `max_active_keys`.
//! - Payload times are microseconds, so a token issued in the same second as a revocation
//!   event but after it is not caught by it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

const FERNET_VERSION: u8 = 0x80;
const PAYLOAD_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to read key repository {path}")]
    Read {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("failed to write key repository {path}")]
    Write {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("key file {path} is not a valid Fernet key")]
    BadKey { path: PathBuf },
    #[error("key repository {path} holds no keys")]
    Empty { path: PathBuf },
}

/// Why a token was not accepted. Callers answer all of them with the same 401/404, so the
/// variants exist for logs and tests.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not well-formed")]
    Malformed,
    #[error("token was not sealed by any known key")]
    BadSignature,
    #[error("token payload is not valid")]
    BadPayload,
}

#[derive(Clone)]
struct FernetKey {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl FernetKey {
    fn generate() -> FernetKey {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        FernetKey::from_bytes(&k)
    }
    fn from_bytes(k: &[u8; 32]) -> FernetKey {
        let mut signing = [0u8; 16];
        let mut encryption = [0u8; 16];
        signing.copy_from_slice(&k[..16]);
        encryption.copy_from_slice(&k[16..]);
        FernetKey { signing, encryption }
    }
    fn encode(&self) -> String {
        let mut k = [0u8; 32];
        k[..16].copy_from_slice(&self.signing);
        k[16..].copy_from_slice(&self.encryption);
        URL_SAFE.encode(k)
    }
    fn decode(text: &str) -> Option<FernetKey> {
        let bytes = URL_SAFE.decode(text.trim()).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(FernetKey::from_bytes(&arr))
    }

    fn seal(&self, plaintext: &[u8], timestamp: u64) -> String {
        let mut iv = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut iv);
        let ct = Aes128CbcEnc::new(&self.encryption.into(), &iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext);
        let mut out = Vec::with_capacity(1 + 8 + 16 + ct.len() + 32);
        out.push(FERNET_VERSION);
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&ct);
        let mut mac = HmacSha256::new_from_slice(&self.signing).expect("HMAC takes any key length");
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(out)
    }

    fn open(&self, raw: &[u8]) -> Result<Vec<u8>, TokenError> {
        let (body, tag) = raw.split_at(raw.len() - 32);
        let mut mac = HmacSha256::new_from_slice(&self.signing).expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| TokenError::BadSignature)?;
        let iv: [u8; 16] = body[9..25].try_into().map_err(|_| TokenError::Malformed)?;
        Aes128CbcDec::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&body[25..])
            .map_err(|_| TokenError::Malformed)
    }
}

/// The keys a process seals and opens tokens with, primary first.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<FernetKey>,
}

impl KeyRing {
    /// Seals `plaintext` with the primary key.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let now = Utc::now().timestamp().max(0) as u64;
        self.keys[0].seal(plaintext, now)
    }

    /// Opens a token with whichever key sealed it.
    pub fn open(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        let token = token.trim().trim_end_matches('=');
        if token.len() > 1024 {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| TokenError::Malformed)?;
        if raw.len() < 1 + 8 + 16 + 16 + 32 || raw[0] != FERNET_VERSION || (raw.len() - 57) % 16 != 0 {
            return Err(TokenError::Malformed);
        }
        for key in &self.keys {
            match key.open(&raw) {
                Err(TokenError::BadSignature) => continue,
                other => return other,
            }
        }
        Err(TokenError::BadSignature)
    }
}

/// The on-disk key repository.
pub struct KeyRepository {
    dir: PathBuf,
    max_active_keys: usize,
}

impl KeyRepository {
    pub fn new(dir: impl Into<PathBuf>, max_active_keys: usize) -> Self {
        KeyRepository { dir: dir.into(), max_active_keys: max_active_keys.max(2) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the repository with a staged and a primary key if it holds none.
    pub fn ensure(&self) -> Result<(), KeyError> {
        if !self.indices()?.is_empty() {
            return Ok(());
        }
        self.write_key(0, &FernetKey::generate())?;
        self.write_key(1, &FernetKey::generate())?;
        Ok(())
    }

    /// Promotes the staged key to primary, stages a new key and removes the oldest keys
    /// beyond `max_active_keys`. Returns the new primary's number.
    pub fn rotate(&self) -> Result<u32, KeyError> {
        self.ensure()?;
        let indices = self.indices()?;
        let max = *indices.iter().max().unwrap_or(&0);
        let staged_path = self.dir.join("0");
        let staged =
            fs::read_to_string(&staged_path).map_err(|err| KeyError::Read { path: staged_path.clone(), err })?;
        let staged = FernetKey::decode(&staged).ok_or(KeyError::BadKey { path: staged_path })?;
        let primary = max + 1;
        self.write_key(primary, &staged)?;
        self.write_key(0, &FernetKey::generate())?;
        let mut secondaries: Vec<u32> = self.indices()?.into_iter().filter(|i| *i != 0).collect();
        secondaries.sort_unstable();
        while secondaries.len() + 1 > self.max_active_keys {
            let oldest = secondaries.remove(0);
            let path = self.dir.join(oldest.to_string());
            fs::remove_file(&path).map_err(|err| KeyError::Write { path, err })?;
        }
        Ok(primary)
    }

    /// Reads the keys: primary (highest number) first, then the others newest first, the
    /// staged key last.
    pub fn load(&self) -> Result<KeyRing, KeyError> {
        let mut indices = self.indices()?;
        if indices.is_empty() {
            return Err(KeyError::Empty { path: self.dir.clone() });
        }
        indices.sort_unstable_by(|a, b| match (a, b) {
            (0, 0) => std::cmp::Ordering::Equal,
            (0, _) => std::cmp::Ordering::Greater,
            (_, 0) => std::cmp::Ordering::Less,
            _ => b.cmp(a),
        });
        let mut keys = Vec::new();
        for i in indices {
            let path = self.dir.join(i.to_string());
            let text = fs::read_to_string(&path).map_err(|err| KeyError::Read { path: path.clone(), err })?;
            keys.push(FernetKey::decode(&text).ok_or(KeyError::BadKey { path })?);
        }
        Ok(KeyRing { keys })
    }

    /// A fingerprint of the repository's listing, to notice rotations cheaply.
    pub fn fingerprint(&self) -> Result<Vec<u32>, KeyError> {
        let mut i = self.indices()?;
        i.sort_unstable();
        Ok(i)
    }

    fn indices(&self) -> Result<Vec<u32>, KeyError> {
        let read_err = |err| KeyError::Read { path: self.dir.clone(), err };
        if !self.dir.exists() {
            create_private_dir(&self.dir).map_err(|err| KeyError::Write { path: self.dir.clone(), err })?;
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            if let Some(i) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                out.push(i);
            }
        }
        Ok(out)
    }

    fn write_key(&self, index: u32, key: &FernetKey) -> Result<(), KeyError> {
        let path = self.dir.join(index.to_string());
        let tmp = self.dir.join(format!(".{index}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = private_file(&tmp)?;
            f.write_all(key.encode().as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|err| KeyError::Write { path: path.clone(), err })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

// ---------------------------------------------------------------------------------------------
// Payload

pub const METHOD_PASSWORD: u8 = 1;
pub const METHOD_TOKEN: u8 = 2;
pub const METHOD_APP_CRED: u8 = 4;

pub fn method_names(bits: u8) -> Vec<String> {
    let mut out = Vec::new();
    if bits & METHOD_PASSWORD != 0 {
        out.push("password".into());
    }
    if bits & METHOD_TOKEN != 0 {
        out.push("token".into());
    }
    if bits & METHOD_APP_CRED != 0 {
        out.push("application_credential".into());
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadScope {
    Unscoped,
    Project(String),
    Domain(String),
    System,
    /// Scoped to the trust's project.
    Trust {
        trust_id: String,
        project_id: String,
    },
}

/// What a token says, before it is checked against the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub methods: u8,
    pub user_id: String,
    pub scope: PayloadScope,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The token's own audit id, then the audit id of the token it was rescoped from.
    pub audit_ids: Vec<[u8; 16]>,
    pub app_cred_id: Option<String>,
}

pub fn new_audit_id() -> [u8; 16] {
    let mut a = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut a);
    a
}

pub fn audit_id_text(a: &[u8; 16]) -> String {
    URL_SAFE_NO_PAD.encode(a)
}

impl Payload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(PAYLOAD_VERSION);
        out.push(self.methods);
        put_id(&mut out, &self.user_id);
        match &self.scope {
            PayloadScope::Unscoped => out.push(0),
            PayloadScope::Project(p) => {
                out.push(1);
                put_id(&mut out, p);
            }
            PayloadScope::Domain(d) => {
                out.push(2);
                put_id(&mut out, d);
            }
            PayloadScope::System => out.push(3),
            PayloadScope::Trust { trust_id, project_id } => {
                out.push(4);
                put_id(&mut out, trust_id);
                put_id(&mut out, project_id);
            }
        }
        out.extend_from_slice(&self.issued_at.timestamp_micros().to_be_bytes());
        out.extend_from_slice(&self.expires_at.timestamp_micros().to_be_bytes());
        out.push(self.audit_ids.len().min(2) as u8);
        for a in self.audit_ids.iter().take(2) {
            out.extend_from_slice(a);
        }
        match &self.app_cred_id {
            None => out.push(0),
            Some(id) => {
                out.push(1);
                put_id(&mut out, id);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Payload, TokenError> {
        let mut r = Reader { b: bytes };
        if r.u8()? != PAYLOAD_VERSION {
            return Err(TokenError::BadPayload);
        }
        let methods = r.u8()?;
        let user_id = r.id()?;
        let scope = match r.u8()? {
            0 => PayloadScope::Unscoped,
            1 => PayloadScope::Project(r.id()?),
            2 => PayloadScope::Domain(r.id()?),
            3 => PayloadScope::System,
            4 => PayloadScope::Trust { trust_id: r.id()?, project_id: r.id()? },
            _ => return Err(TokenError::BadPayload),
        };
        let issued_at = DateTime::from_timestamp_micros(r.i64()?).ok_or(TokenError::BadPayload)?;
        let expires_at = DateTime::from_timestamp_micros(r.i64()?).ok_or(TokenError::BadPayload)?;
        let n = r.u8()?;
        if n > 2 {
            return Err(TokenError::BadPayload);
        }
        let mut audit_ids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            audit_ids.push(r.take(16)?.try_into().map_err(|_| TokenError::BadPayload)?);
        }
        let app_cred_id = match r.u8()? {
            0 => None,
            1 => Some(r.id()?),
            _ => return Err(TokenError::BadPayload),
        };
        if !r.b.is_empty() {
            return Err(TokenError::BadPayload);
        }
        Ok(Payload { methods, user_id, scope, issued_at, expires_at, audit_ids, app_cred_id })
    }
}

/// Ids that are 32 lowercase hex digits (uuid4 hex, as Keystone makes them) take 16 bytes.
fn put_id(out: &mut Vec<u8>, id: &str) {
    let is_hex = id.len() == 32 && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    if is_hex {
        out.push(1);
        for i in 0..16 {
            out.push(u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap_or(0));
        }
    } else {
        let b = id.as_bytes();
        let len = b.len().min(255);
        out.push(2);
        out.push(len as u8);
        out.extend_from_slice(&b[..len]);
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TokenError> {
        if self.b.len() < n {
            return Err(TokenError::BadPayload);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, TokenError> {
        Ok(self.take(1)?[0])
    }
    fn i64(&mut self) -> Result<i64, TokenError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().map_err(|_| TokenError::BadPayload)?))
    }
    fn id(&mut self) -> Result<String, TokenError> {
        match self.u8()? {
            1 => {
                let raw = self.take(16)?;
                Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
            }
            2 => {
                let n = self.u8()? as usize;
                String::from_utf8(self.take(n)?.to_vec()).map_err(|_| TokenError::BadPayload)
            }
            _ => Err(TokenError::BadPayload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        std::env::temp_dir().join(format!("haneul-keys-{}", uuid::Uuid::new_v4()))
    }

    fn payload() -> Payload {
        Payload {
            methods: METHOD_PASSWORD,
            user_id: "0123456789abcdef0123456789abcdef".into(),
            scope: PayloadScope::Project("default".into()),
            issued_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            expires_at: DateTime::from_timestamp_micros(1_700_003_600_123_456).unwrap(),
            audit_ids: vec![new_audit_id()],
            app_cred_id: None,
        }
    }

    #[test]
    fn payload_round_trips_with_hex_and_plain_ids() {
        let p = payload();
        assert_eq!(Payload::decode(&p.encode()).unwrap(), p);
        let mut t = payload();
        t.scope = PayloadScope::Trust { trust_id: "t".into(), project_id: "ab".repeat(16) };
        t.app_cred_id = Some("x".into());
        assert_eq!(Payload::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn truncated_payload_is_rejected_not_panicking() {
        let bytes = payload().encode();
        for n in 0..bytes.len() {
            assert!(Payload::decode(&bytes[..n]).is_err());
        }
    }

    #[test]
    fn token_sealed_before_rotation_still_opens_after_it() {
        let dir = tmp();
        let repo = KeyRepository::new(&dir, 3);
        repo.ensure().unwrap();
        let before = repo.load().unwrap().seal(b"hello");
        repo.rotate().unwrap();
        assert_eq!(repo.load().unwrap().open(&before).unwrap(), b"hello");
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn token_of_a_key_that_aged_out_is_rejected() {
        let dir = tmp();
        let repo = KeyRepository::new(&dir, 3);
        repo.ensure().unwrap();
        let old = repo.load().unwrap().seal(b"hello");
        for _ in 0..3 {
            repo.rotate().unwrap();
        }
        assert_eq!(repo.load().unwrap().open(&old), Err(TokenError::BadSignature));
        assert_eq!(repo.fingerprint().unwrap().len(), 3);
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn rotation_promotes_the_staged_key() {
        let dir = tmp();
        let repo = KeyRepository::new(&dir, 5);
        repo.ensure().unwrap();
        let staged = fs::read_to_string(dir.join("0")).unwrap();
        let primary = repo.rotate().unwrap();
        assert_eq!(primary, 2);
        assert_eq!(fs::read_to_string(dir.join("2")).unwrap(), staged);
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn tampered_token_is_rejected() {
        let dir = tmp();
        let repo = KeyRepository::new(&dir, 3);
        repo.ensure().unwrap();
        let ring = repo.load().unwrap();
        let t = ring.seal(b"hello");
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        raw[30] ^= 1;
        assert_eq!(ring.open(&URL_SAFE_NO_PAD.encode(raw)), Err(TokenError::BadSignature));
        assert_eq!(ring.open("not a token"), Err(TokenError::Malformed));
        assert_eq!(ring.open(""), Err(TokenError::Malformed));
        fs::remove_dir_all(dir).ok();
    }
}
