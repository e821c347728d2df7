//! `bottleneck data fetch`: downloads from canonical mirrors with SHA-256 checks.
//!
//! Every file is streamed into a temporary file in the destination folder, hashed as it
//! arrives, and renamed into place only when its digest matches: a failed, corrupt or
//! interrupted download never leaves a file under its final name.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::atomic::write_atomic_with;
use crate::error::{DataError, Result};
use crate::source::{RemoteFile, Source};

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// The dataset folder the files are in.
    pub dir: PathBuf,
    /// Files downloaded now.
    pub downloaded: Vec<String>,
    /// Files already present with the right checksum.
    pub present: Vec<String>,
}

/// Lower-case hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs_err::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Downloads `url` to `dest` if and only if its SHA-256 is `sha256`.
pub fn download_verified(url: &str, sha256: &str, dest: &Path) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .build()
        .into();
    let dl_err = |reason: String| DataError::Download { url: url.into(), reason };
    let mut resp = agent.get(url).call().map_err(|e| dl_err(e.to_string()))?;
    let mut body = resp.body_mut().as_reader();
    // The checksum is checked inside the atomic write: a mismatch aborts it, so nothing
    // is renamed into place and the temporary file is removed.
    let mut failure = None;
    let written = write_atomic_with(dest, |f| {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match body.read(&mut buf) {
                Ok(n) => n,
                Err(e) => {
                    failure = Some(dl_err(e.to_string()));
                    return Err(std::io::Error::other("download failed"));
                }
            };
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n])?;
        }
        let actual = hex(&hasher.finalize());
        if actual != sha256 {
            failure = Some(DataError::Checksum { url: url.into(), expected: sha256.into(), actual });
            return Err(std::io::Error::other("checksum mismatch"));
        }
        Ok(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    written?;
    Ok(())
}

/// Fetches every remote file of `source` into `cache_root/<name>/`, trying `mirrors`
/// (or the source's own when empty) in order. Files already present with the right
/// checksum are kept. Archives (CIFAR-10) are unpacked atomically afterwards.
pub fn fetch(source: &Source, cache_root: &Path, mirrors: &[String]) -> Result<FetchReport> {
    if source.remote.is_empty() {
        return Err(DataError::InvalidConfig {
            key: "data.name".into(),
            value: source.name.into(),
            allowed: "only datasets with published files can be fetched: fashion-mnist, mnist, kmnist, cifar10".into(),
        });
    }
    let mirrors: Vec<String> =
        if mirrors.is_empty() { source.mirrors.iter().map(|m| (*m).to_string()).collect() } else { mirrors.to_vec() };
    let dir = cache_root.join(source.name);
    let mut report = FetchReport { dir: dir.clone(), downloaded: Vec::new(), present: Vec::new() };
    for file in source.remote {
        let dest = dir.join(file.name);
        if dest.is_file() && sha256_file(&dest)? == file.sha256 {
            report.present.push(file.name.into());
            continue;
        }
        fetch_one(file, &mirrors, &dest)?;
        report.downloaded.push(file.name.into());
    }
    for file in source.remote.iter().filter(|f| f.name.ends_with(".tar.gz")) {
        unpack_tar_gz(&dir.join(file.name), &dir)?;
    }
    Ok(report)
}

fn fetch_one(file: &RemoteFile, mirrors: &[String], dest: &Path) -> Result<()> {
    let mut first_err = None;
    for (i, mirror) in mirrors.iter().enumerate() {
        let url = format!("{}/{}", mirror.trim_end_matches('/'), file.name);
        tracing::info!(%url, "downloading");
        match download_verified(&url, file.sha256, dest) {
            Ok(()) => return Ok(()),
            Err(e) => {
                if i + 1 < mirrors.len() {
                    tracing::warn!("{e}; trying the next mirror");
                }
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| DataError::Download { url: file.name.into(), reason: "no mirror to try".into() }))
}

/// Unpacks a `.tar.gz` into `dir`: into a temporary folder first, then each top-level
/// entry is renamed into place (entries already present are kept).
pub fn unpack_tar_gz(archive: &Path, dir: &Path) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix(".unpack-").tempdir_in(dir)?;
    let gz = flate2::read::GzDecoder::new(fs_err::File::open(archive)?);
    tar::Archive::new(gz)
        .unpack(tmp.path())
        .map_err(|e| DataError::Gzip { path: archive.into(), reason: e.to_string() })?;
    for entry in fs_err::read_dir(tmp.path())? {
        let entry = entry?;
        let target = dir.join(entry.file_name());
        if !target.exists() {
            fs_err::rename(entry.path(), target)?;
        }
    }
    Ok(())
}
