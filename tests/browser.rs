//! Opens a report in a real browser — headless Chromium from Debian's packages, driven
//! through chromedriver's `WebDriver` HTTP API — and checks that it loads with no console
//! errors and with every image decoded.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process, killed when dropped.
pub struct Driver {
    child: Child,
    base: String,
    session: String,
}

/// One request to chromedriver; the JSON reply, or what went wrong.
fn try_http(method: &str, url: &str, body: Option<&Value>) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = match (method, body) {
        ("POST", Some(b)) => agent.post(url).header("Content-Type", "application/json").send(b.to_string()),
        ("DELETE", _) => agent.delete(url).call(),
        _ => agent.get(url).call(),
    }
    .map_err(|e| format!("{method} {url}: {e}"))?;
    let text = resp.body_mut().read_to_string().map_err(|e| format!("{method} {url}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{method} {url}: {e}: {text}"))
}

fn http(method: &str, url: &str, body: Option<&Value>) -> Value {
    try_http(method, url, body).unwrap_or_else(|e| panic!("{e}"))
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session with browser logs on.
    pub fn start() -> Self {
        assert!(
            Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file(),
            "the report check needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); install them with scripts/setup.sh --deps"
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let t0 = Instant::now();
        let mut driver = Self { child, base, session: String::new() };
        loop {
            // While chromedriver starts it may accept and then reset a connection: not
            // ready yet, ask again.
            let status = try_http("GET", &format!("{}/status", driver.base), None);
            if status.is_ok_and(|v| v["value"]["ready"] == json!(true)) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "chromedriver did not come up on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--no-first-run", "--allow-file-access-from-files"]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let r = http("POST", &format!("{}/session", driver.base), Some(&caps));
        driver.session = r["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_string();
        driver
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}/{path}", self.base, self.session)
    }

    /// Loads `page` and checks images and console; returns the number of images.
    pub fn check(&self, page: &Path) -> usize {
        let url = format!("file://{}", page.canonicalize().unwrap().display());
        let r = http("POST", &self.url("url"), Some(&json!({ "url": url })));
        assert!(r["value"].is_null(), "navigating to {url}: {r}");
        // Wait for every image to finish (decoded or failed).
        let script = "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])";
        let t0 = Instant::now();
        let images = loop {
            let r = http("POST", &self.url("execute/sync"), Some(&json!({ "script": script, "args": [] })));
            let images = r["value"].as_array().unwrap_or_else(|| panic!("{r}")).clone();
            if images.iter().all(|i| i[1] == json!(true)) || t0.elapsed() > Duration::from_secs(20) {
                break images;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        for i in &images {
            assert!(i[2].as_u64().unwrap_or(0) > 0, "{}: image {} did not decode", page.display(), i[0]);
        }
        let logs = http("POST", &self.url("se/log"), Some(&json!({ "type": "browser" })));
        let errors: Vec<&Value> = logs["value"]
            .as_array()
            .unwrap_or_else(|| panic!("browser log: {logs}"))
            .iter()
            .filter(|e| e["level"] == json!("SEVERE"))
            .collect();
        assert!(errors.is_empty(), "{}: console errors: {errors:?}", page.display());
        images.len()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ =
                std::panic::catch_unwind(|| http("DELETE", &format!("{}/session/{}", self.base, self.session), None));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[should_panic(expected = "did not decode")]
fn a_broken_image_fails_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("bad.png"), b"not a png").unwrap();
    std::fs::write(tmp.path().join("report.html"), "<!DOCTYPE html><html><body><img src=\"bad.png\"></body></html>")
        .unwrap();
    Driver::start().check(&tmp.path().join("report.html"));
}

#[test]
#[should_panic(expected = "console errors")]
fn a_console_error_fails_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("report.html"),
        "<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    Driver::start().check(&tmp.path().join("report.html"));
}
