//! Helpers shared by the data crate's tests and the end-to-end tests: fixture writers
//! and a loopback HTTP server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flate2::write::GzEncoder;
use flate2::Compression;

/// IDX bytes of unsigned bytes with the given dims.
pub fn idx_bytes(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Gzip-compresses bytes.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A deterministic pseudo-random byte pattern (not from the code under test).
pub fn pattern(n: usize, salt: u32) -> Vec<u8> {
    let mut x = 0x1234_5678u32 ^ salt;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a complete MNIST-format folder with `n_train`/`n_test` 28×28 images and labels
/// `i % 10`; gzip or raw. Returns the images and labels written, train then test.
pub fn write_mnist_dir(dir: &Path, n_train: usize, n_test: usize, gzip: bool) -> [(Vec<u8>, Vec<u8>); 2] {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    for (prefix, n, salt) in [("train", n_train, 1), ("t10k", n_test, 2)] {
        let images = pattern(n * 28 * 28, salt);
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let files = [
            (format!("{prefix}-images-idx3-ubyte"), idx_bytes(&[n, 28, 28], &images)),
            (format!("{prefix}-labels-idx1-ubyte"), idx_bytes(&[n], &labels)),
        ];
        for (name, bytes) in files {
            if gzip {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
        out.push((images, labels));
    }
    [out.remove(0), out.remove(0)]
}

/// Where the Debian package puts Fashion-MNIST; fails loudly with the fix when absent.
pub fn fashion_mnist_dir() -> PathBuf {
    let dir = PathBuf::from("/usr/share/datasets/fashion-mnist");
    assert!(
        dir.join("train-images-idx3-ubyte.gz").is_file(),
        "Fashion-MNIST is missing from {}: run `scripts/setup.sh --deps` (installs the Debian package dataset-fashion-mnist)",
        dir.display()
    );
    dir
}

/// A loopback HTTP/1.1 server serving `files` by path (`/name`); 404 otherwise.
/// Runs on a background thread for the rest of the test process.
pub fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let files = Arc::new(files);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                let _ = match files.get(&path) {
                    Some(body) => {
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body))
                    }
                    None => {
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    }
                };
            });
        }
    });
    format!("http://{addr}/")
}

/// Every file name in a folder (including hidden temporaries), sorted.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}
