//! Key pairs made for the user, as Nova made them before microversion 2.92: a 2048-bit RSA
//! key, with its OpenSSH public key (type `ssh`, private key in PEM as `ssh-keygen -m PEM`
//! writes it) or a self-signed certificate for `CN=<user id>`, valid ten years (type
//! `x509`, private key in PKCS#8 as `openssl req -nodes` writes it). In-process: no program
//! is run and no file is written.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};

const BITS: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("RSA key generation failed")]
    Rsa(#[from] rsa::Error),
    #[error("encoding the private key failed")]
    Pkcs1(#[from] rsa::pkcs1::Error),
    #[error("encoding the key failed")]
    Pkcs8(#[from] rsa::pkcs8::Error),
    #[error("encoding the public key failed")]
    Spki(#[from] rsa::pkcs8::spki::Error),
}

/// The fingerprint Nova shows: md5 of the key blob (ssh) or sha1 of the certificate (x509),
/// as colon-separated hex; None when the key does not parse.
pub fn fingerprint(kind: &str, public_key: &str) -> Option<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest: Vec<u8> = if kind == "x509" {
        let body: String = public_key.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = b64.decode(body.trim()).ok().filter(|d| !d.is_empty())?;
        sha1::Sha1::digest(&der).to_vec()
    } else {
        let mut parts = public_key.split_whitespace();
        let algo = parts.next()?;
        let blob = b64.decode(parts.next()?).ok()?;
        // The blob starts with the algorithm name, length-prefixed.
        let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
        if blob.get(4..4 + len)? != algo.as_bytes() {
            return None;
        }
        md5::Md5::digest(&blob).to_vec()
    };
    Some(digest.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"))
}

/// A new key pair: `(private key PEM, public key)`; the public key is an OpenSSH line for
/// `ssh` and a PEM certificate for `x509`.
pub fn generate(kind: &str, user_id: &str) -> Result<(String, String), KeygenError> {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), BITS)?;
    if kind == "x509" {
        let private = key.to_pkcs8_pem(LineEnding::LF)?.to_string();
        let cert = certificate(&key, user_id, Utc::now())?;
        Ok((private, pem("CERTIFICATE", &cert)))
    } else {
        let private = key.to_pkcs1_pem(LineEnding::LF)?.to_string();
        Ok((private, openssh_public(&key)))
    }
}

/// `ssh-rsa <base64 of the wire blob> Generated-by-Nova`.
fn openssh_public(key: &RsaPrivateKey) -> String {
    let mut blob = Vec::new();
    for part in [b"ssh-rsa".to_vec(), mpint(&key.e().to_bytes_be()), mpint(&key.n().to_bytes_be())] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(&part);
    }
    format!("ssh-rsa {} Generated-by-Nova", base64::engine::general_purpose::STANDARD.encode(blob))
}

/// An SSH `mpint`'s bytes: big-endian, a leading zero when the top bit is set.
fn mpint(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    match trimmed.first() {
        Some(b) if b & 0x80 != 0 => [&[0u8][..], &trimmed].concat(),
        _ => trimmed,
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A self-signed X.509 v3 certificate (DER) for `CN=<cn>`, signed with SHA-256 and RSA.
fn certificate(key: &RsaPrivateKey, cn: &str, now: DateTime<Utc>) -> Result<Vec<u8>, KeygenError> {
    const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    let algorithm = der(0x30, &[der(0x06, SHA256_WITH_RSA), der(0x05, &[])].concat());
    let name = der(0x30, &der(0x31, &der(0x30, &[der(0x06, COMMON_NAME), der(0x0c, cn.as_bytes())].concat())));
    let utc = |t: DateTime<Utc>| der(0x17, t.format("%y%m%d%H%M%SZ").to_string().as_bytes());
    let validity = der(0x30, &[utc(now), utc(now + Duration::days(3650))].concat());
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x40; // and sixteen bytes long
    let spki = key.to_public_key().to_public_key_der()?.into_vec();
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])), // version 3
            der(0x02, &serial),
            algorithm.clone(),
            name.clone(),
            validity,
            name,
            spki,
        ]
        .concat(),
    );
    let signature = key.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&tbs))?;
    let bits = [&[0u8][..], &signature].concat(); // no unused bits
    Ok(der(0x30, &[tbs, algorithm, der(0x03, &bits)].concat()))
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().iter().copied().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_keys_are_openssh_lines_whose_fingerprint_parses() {
        let (private, public) = generate("ssh", "u").unwrap();
        assert!(private.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"), "{private}");
        assert!(public.starts_with("ssh-rsa AAAAB3NzaC1yc2E") && public.ends_with(" Generated-by-Nova"), "{public}");
        assert!(fingerprint("ssh", &public).is_some());
        // Where ssh-keygen is installed, the private key gives back the same public key.
        let path = std::env::temp_dir().join(format!("haneul-ssh-test-{}", std::process::id()));
        std::fs::write(&path, &private).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let out = std::process::Command::new("ssh-keygen").arg("-y").arg("-f").arg(&path).output();
        let _ = std::fs::remove_file(&path);
        if let Ok(out) = out {
            assert!(out.status.success(), "ssh-keygen refused the key: {}", String::from_utf8_lossy(&out.stderr));
            let derived = String::from_utf8_lossy(&out.stdout);
            let blob = |s: &str| s.split_whitespace().nth(1).map(str::to_string);
            assert_eq!(blob(&derived), blob(&public));
        }
    }

    #[test]
    fn x509_certificates_are_well_formed_der() {
        let (private, cert) = generate("x509", "user-1").unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----\n") && cert.ends_with("-----END CERTIFICATE-----\n"));
        assert!(fingerprint("x509", &cert).is_some());
        // Where openssl is installed, it reads the certificate and its subject back.
        let dir = std::env::temp_dir().join(format!("haneul-x509-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cert.pem");
        std::fs::write(&path, &cert).unwrap();
        let out = std::process::Command::new("openssl").args(["x509", "-noout", "-subject", "-in"]).arg(&path).output();
        // ... and its signature verifies with its own key.
        let verified = std::process::Command::new("openssl")
            .args(["verify", "-check_ss_sig", "-CAfile"])
            .arg(&path)
            .arg(&path)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        if let (Ok(out), Ok(verified)) = (out, verified) {
            assert!(out.status.success(), "openssl refused the certificate: {}", String::from_utf8_lossy(&out.stderr));
            assert!(String::from_utf8_lossy(&out.stdout).contains("CN = user-1"), "{out:?}");
            assert!(verified.status.success(), "the signature does not verify: {verified:?}");
        }
    }

    #[test]
    fn der_lengths_use_the_long_form_past_127() {
        assert_eq!(der(0x04, &[0; 3])[..2], [0x04, 3]);
        assert_eq!(der(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[0; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(mpint(&[0x80, 1]), [0, 0x80, 1]);
        assert_eq!(mpint(&[0, 0x7f]), [0x7f]);
    }
}
