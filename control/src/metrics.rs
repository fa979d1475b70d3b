//! The optional Prometheus endpoint (`--metrics 127.0.0.1:9586`; off by default): per-peer
//! bytes and packets each way and handshake age, per-worker packet counters and drops by
//! reason, handshake outcomes and cookie replies sent, in the text exposition format.
//!
//! As with the UAPI socket, a thread owns the listener ([`crate::service`]) and the control
//! loop renders the page on request (it owns the state), so a scrape never blocks handshakes
//! for longer than the rendering. Counters are monotonic; Prometheus derives rates (`rate(...[1m])`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// A scrape waiting for its page.
#[derive(Debug)]
pub struct Scrape(mpsc::Sender<String>);

impl Scrape {
    pub fn answer(self, page: String) {
        let _ = self.0.send(page);
    }
}

#[derive(Debug)]
pub struct Metrics {
    addr: SocketAddr,
    service: crate::service::Service<Scrape>,
}

impl Metrics {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let service = crate::service::Service::spawn(
            "wgxdp-metrics",
            move || listener.accept().ok().map(|(s, _)| s),
            |s: TcpStream, tx, _| serve(s, tx),
        )?;
        Ok(Self { addr, service })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn poll(&self) -> Option<Scrape> {
        self.service.poll()
    }
}

/// Answers one HTTP/1.x request: `GET /metrics` gets the page, anything else a 404.
fn serve(mut s: TcpStream, tx: &mpsc::Sender<Scrape>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    // A client trickling a byte at a time gets this long in all, not 2 s per byte.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !req.windows(4).any(|w| w == b"\r\n\r\n")
        && req.len() < 8192
        && std::time::Instant::now() < deadline
    {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let first = req.split(|b| *b == b'\n').next().unwrap_or_default();
    let is_metrics = first.starts_with(b"GET /metrics ") || first.starts_with(b"GET / ");
    let (status, body) = if is_metrics {
        let (reply, rx) = mpsc::channel();
        if tx.send(Scrape(reply)).is_err() {
            return;
        }
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(page) => ("200 OK", page),
            Err(_) => ("503 Service Unavailable", "control is busy\n".to_string()),
        }
    } else {
        ("404 Not Found", "try /metrics\n".to_string())
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Builds a page in the exposition format: each family's HELP and TYPE once, then samples.
#[derive(Debug, Default)]
pub struct Page {
    text: String,
}

impl Page {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        self.text
            .push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    }

    /// One sample; label values are escaped as the format requires.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                self.text.push_str(&format!("{k}=\"{v}\""));
            }
            self.text.push('}');
        }
        self.text.push_str(&format!(" {value}\n"));
    }

    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_404s_the_rest() {
        let m = Metrics::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = m.local_addr();
        let client = std::thread::spawn(move || {
            let get = |path: &str| {
                let mut s = TcpStream::connect(addr).unwrap();
                write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                let mut a = String::new();
                s.read_to_string(&mut a).unwrap();
                a
            };
            (get("/metrics"), get("/other"))
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !client.is_finished() && std::time::Instant::now() < deadline {
            if let Some(s) = m.poll() {
                let mut p = Page::default();
                p.family("wgxdp_test_total", "counter", "A test.");
                p.sample("wgxdp_test_total", &[("peer", "a\"b")], 3.0);
                s.answer(p.finish());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (page, other) = client.join().unwrap();
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
        assert!(page.ends_with(
            "# HELP wgxdp_test_total A test.\n# TYPE wgxdp_test_total counter\nwgxdp_test_total{peer=\"a\\\"b\"} 3\n"
        ));
        assert!(other.starts_with("HTTP/1.1 404"));
    }
}
