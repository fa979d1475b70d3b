//! The `set=1` operation of the UAPI socket: the request reader (`control::uapi::read_set`,
//! bytes up to the blank line) and the body parser (`control::uapi::set::parse`).
//!
//! Neither panics on any input, and for a body without blank lines the reader and the parser
//! agree (the reader only frames lines and checks UTF-8 and sizes).

use control::uapi::{read_set, set, UapiError};

pub fn run(data: &[u8]) {
    let body = String::from_utf8_lossy(data);
    let parsed = set::parse(&body);
    if let Err(e) = &parsed {
        let _ = e.to_string();
    }
    let _ = read_set(&mut std::io::Cursor::new(data));

    // The same lines as a request, each ended by a newline, then the blank line that ends
    // the request. (Lines of 64 KiB or more the reader refuses, as wireguard-go does.)
    let lines: Vec<&str> = body.split_terminator('\n').collect();
    if lines.iter().any(|l| l.is_empty() || l.len() >= 64 * 1024) {
        return;
    }
    let mut framed = String::new();
    for l in &lines {
        framed.push_str(l);
        framed.push('\n');
    }
    let parsed = set::parse(&framed);
    framed.push('\n');
    let read = read_set(&mut std::io::Cursor::new(framed.as_bytes()));
    assert_eq!(
        summary(&read),
        summary(&parsed),
        "reader and parser disagree"
    );
}

/// What a result amounts to, comparably: `SetRequest` holds keys and has no `PartialEq`.
fn summary(r: &Result<set::SetRequest, UapiError>) -> Result<String, i32> {
    match r {
        Ok(req) => Ok(format!("{req:?}")),
        Err(e) => Err(e.errno.code()),
    }
}
