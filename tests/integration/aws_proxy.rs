//! ferry's AWS requests honour the proxy settings the AWS SDK honours
//! (`HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`): every service, not only S3 and the
//! credential providers. A counting forward proxy on a loopback port stands in
//! for a corporate one, in front of the emulator.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::common::emulator::{Emulator, strs};

/// Requests seen by the proxy, by the SigV4 signing service of each.
type Seen = Arc<Mutex<BTreeMap<String, usize>>>;

/// A plain-HTTP forward proxy: takes absolute-form requests, forwards each to
/// its host with `Connection: close`, and copies the answer back.
fn start_proxy() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let counts = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let _ = forward(conn, &counts);
            });
        }
    });
    (url, seen)
}

fn forward(client: TcpStream, seen: &Seen) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, target, version) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let rest = target.strip_prefix("http://").unwrap_or(target);
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let mut head = format!("{method} {path} {version}\r\n");
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:")
            && let Some(scope) = line.split("Credential=").nth(1)
        {
            let service = scope.split('/').nth(3).unwrap_or("?").to_string();
            *seen.lock().unwrap().entry(service).or_default() += 1;
        }
        if lower.starts_with("connection:") || lower.starts_with("proxy-") {
            continue;
        }
        head.push_str(&line);
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut upstream = TcpStream::connect(authority)?;
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    let mut client = client;
    client.write_all(&answer)
}

#[test]
fn every_aws_service_goes_through_the_configured_proxy_and_no_proxy_bypasses_it() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let (proxy, seen) = start_proxy();

    let r = p.ferry_with(&["plan", "stage"], &[("HTTP_PROXY", &proxy), ("NO_PROXY", "")]);
    assert_eq!(r.code, 0, "plan through the proxy: {r:?}");
    let by_service = seen.lock().unwrap().clone();
    for service in ["cloudformation", "rds", "ecs"] {
        assert!(by_service.get(service).copied().unwrap_or(0) > 0, "{service} bypassed the proxy: {by_service:?}");
    }

    seen.lock().unwrap().clear();
    let r = p.ferry_with(&["plan", "stage"], &[("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(seen.lock().unwrap().is_empty(), "NO_PROXY names the endpoint: {:?}", seen.lock().unwrap());
}
