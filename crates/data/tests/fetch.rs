//! `fetch` against a loopback HTTP server serving generated files.

// These tests expect exact values (masks, bytes / 255), so exact float comparison is meant.
#![allow(clippy::float_cmp)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;

use bottleneck_data::source::{Format, RemoteFile, Source};
use bottleneck_data::{fetch, DataConfig, DataError, RawDataset, SearchPath};
use sha2::{Digest, Sha256};

fn sha(bytes: &[u8]) -> &'static str {
    let hex = Sha256::digest(bytes).iter().fold(String::new(), |mut s, b| {
        write!(s, "{b:02x}").unwrap();
        s
    });
    Box::leak(hex.into_boxed_str())
}

fn source_with(remote: Vec<RemoteFile>) -> Source {
    let real = bottleneck_data::find_source("mnist").unwrap();
    Source { remote: Box::leak(remote.into_boxed_slice()), mirrors: &[], ..*real }
}

fn mnist_files() -> HashMap<String, Vec<u8>> {
    let tmp = tempfile::tempdir().unwrap();
    common::write_mnist_dir(tmp.path(), 20, 10, true);
    common::list_dir(tmp.path()).into_iter().map(|n| (n.clone(), std::fs::read(tmp.path().join(&n)).unwrap())).collect()
}

#[test]
fn downloads_verifies_and_loads() {
    let files = mnist_files();
    let url = common::serve(files.clone());
    let remote: Vec<RemoteFile> =
        files.iter().map(|(n, b)| RemoteFile { name: Box::leak(n.clone().into_boxed_str()), sha256: sha(b) }).collect();
    let src = source_with(remote);
    let cache = tempfile::tempdir().unwrap();
    let report = fetch(&src, cache.path(), std::slice::from_ref(&url)).unwrap();
    assert_eq!(report.downloaded.len(), 4);
    assert_eq!(report.dir, cache.path().join("mnist"));
    let mut names: Vec<_> = files.keys().cloned().collect();
    names.sort();
    assert_eq!(common::list_dir(&report.dir), names, "no temporaries left behind");
    // A second fetch finds everything present and downloads nothing.
    let again = fetch(&src, cache.path(), &[url]).unwrap();
    assert!(again.downloaded.is_empty() && again.present.len() == 4);
    // And the cache is the last place the loader looks.
    let sp = SearchPath {
        config_dir: None,
        env_dir: None,
        system_root: "/nonexistent".into(),
        cache_root: Some(cache.path().into()),
    };
    let ds = RawDataset::load_from(&DataConfig::named("mnist"), 0, &sp).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (20, 10));
}

#[test]
fn wrong_checksum_leaves_nothing() {
    let files = mnist_files();
    let url = common::serve(files.clone());
    let name = "train-images-idx3-ubyte.gz";
    let src = source_with(vec![RemoteFile { name, sha256: sha(b"something else") }]);
    let cache = tempfile::tempdir().unwrap();
    let e = fetch(&src, cache.path(), &[url]).unwrap_err();
    assert!(matches!(&e, DataError::Checksum { expected, .. } if expected == sha(b"something else")), "{e:?}");
    assert!(e.to_string().contains(name), "{e}");
    assert_eq!(common::list_dir(&cache.path().join("mnist")), Vec::<String>::new());
}

#[test]
fn missing_file_and_dead_mirror_fall_through_to_the_next_mirror() {
    let files = mnist_files();
    let good = common::serve(files.clone());
    let empty = common::serve(HashMap::new());
    let name = "t10k-labels-idx1-ubyte.gz";
    let src = source_with(vec![RemoteFile { name, sha256: sha(&files[name]) }]);
    let cache = tempfile::tempdir().unwrap();
    // Only a 404 mirror: a download error naming the URL, and nothing written.
    let e = fetch(&src, cache.path(), std::slice::from_ref(&empty)).unwrap_err();
    assert!(matches!(e, DataError::Download { .. }) && e.to_string().contains("404"), "{e}");
    assert!(common::list_dir(&cache.path().join("mnist")).is_empty());
    // 404 first, then a good mirror: fetched.
    let report = fetch(&src, cache.path(), &[empty, good]).unwrap();
    assert_eq!(report.downloaded, [name]);
}

#[test]
fn archives_are_unpacked_into_place() {
    // A CIFAR-like tarball holding one folder with one file.
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        let data = b"hello batches";
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, "cifar-10-batches-bin/readme.txt", &data[..]).unwrap();
        b.finish().unwrap();
    }
    let archive = common::gz(&tar_bytes);
    let url = common::serve(HashMap::from([("cifar-10-binary.tar.gz".to_string(), archive.clone())]));
    let real = bottleneck_data::find_source("cifar10").unwrap();
    let src = Source {
        remote: Box::leak(
            vec![RemoteFile { name: "cifar-10-binary.tar.gz", sha256: sha(&archive) }].into_boxed_slice(),
        ),
        ..*real
    };
    assert_eq!(src.format, Format::Cifar10);
    let cache = tempfile::tempdir().unwrap();
    fetch(&src, cache.path(), &[url]).unwrap();
    let dir = cache.path().join("cifar10");
    assert_eq!(common::list_dir(&dir), ["cifar-10-batches-bin", "cifar-10-binary.tar.gz"]);
    assert_eq!(std::fs::read(dir.join("cifar-10-batches-bin/readme.txt")).unwrap(), b"hello batches");
}

#[test]
fn synthetic_sources_cannot_be_fetched() {
    let src = bottleneck_data::find_source("blobs").unwrap();
    let e = fetch(src, std::path::Path::new("/nonexistent"), &[]).unwrap_err();
    assert!(e.to_string().contains("fashion-mnist, mnist, kmnist, cifar10"), "{e}");
}
