//! tests/emulator/fault_proxy.py in front of the emulator: ferry's S3 requests
//! go through it (`AWS_ENDPOINT_URL_S3`), and rules make chosen answers get
//! lost, dropped or cut short after the emulator applied the request.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use super::emulator::{Emulator, repo};

pub struct FaultProxy {
    child: Child,
    pub endpoint: String,
    python: std::path::PathBuf,
}

impl FaultProxy {
    pub fn start(emu: &Emulator) -> FaultProxy {
        let mut child = Command::new(&emu.python)
            .arg(repo().join("tests/emulator/fault_proxy.py"))
            .args(["--upstream", &emu.endpoint, "--port", "0", "--exit-on-stdin-eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let endpoint =
            line.trim().strip_prefix("READY ").unwrap_or_else(|| panic!("fault proxy: {line:?}")).to_string();
        FaultProxy { child, endpoint, python: emu.python.clone() }
    }

    fn call(&self, method: &str, path: &str, body: &str) -> serde_json::Value {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import sys, urllib.request\n\
                 r = urllib.request.Request(sys.argv[1], data=sys.argv[3].encode() or None, method=sys.argv[2])\n\
                 sys.stdout.write(urllib.request.urlopen(r).read().decode())",
            ])
            .arg(format!("{}{path}", self.endpoint))
            .args([method, body])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Add rules (see the proxy's docstring for their shape).
    pub fn rules(&self, rules: serde_json::Value) {
        self.call("POST", "/_fault/rules", &rules.to_string());
    }

    /// The rules with how often each applied.
    pub fn applied(&self) -> Vec<u64> {
        self.call("GET", "/_fault/rules", "")
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["applied"].as_u64().unwrap())
            .collect()
    }

    /// Every request the proxy saw.
    pub fn log(&self) -> Vec<serde_json::Value> {
        self.call("GET", "/_fault/log", "").as_array().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
