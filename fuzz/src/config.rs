//! `wg`/`wg-quick` configuration files (`control::config::parse`).
//!
//! The input is the file's text (invalid UTF-8 replaced, as the bytes still exercise the
//! parser). A file that parses writes out (`Config::to_wg_quick_string`) as text that parses
//! to the same configuration and writes out the same again; a refusal formats its message.

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = control::config::parse("fuzz.conf", &text);
    let with_warnings = control::config::parse_with_warnings("fuzz.conf", &text);
    assert_eq!(parsed.is_ok(), with_warnings.is_ok());
    let config = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let written = config.to_wg_quick_string();
    let again = control::config::parse("written.conf", &written)
        .unwrap_or_else(|e| panic!("the written configuration does not parse: {e}"));
    assert!(
        again == config,
        "write then parse changes the configuration"
    );
    assert!(
        again.to_wg_quick_string() == written,
        "writing is not stable"
    );
}
