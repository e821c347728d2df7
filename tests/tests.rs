//! End-to-end tests: run the real `bottleneck` binary and check what it prints and writes.

#[path = "../crates/data/tests/common/mod.rs"]
mod common;

mod board;
mod browser;
mod data;
mod kinds;
mod reliability;
mod run;
mod sweep;
