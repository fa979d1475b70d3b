//! What a backend does not do with a wg-quick file yet: every key a user wrote that would be
//! ignored is named, so that `wgxdp check` and `wgxdp up` never call such a file "OK" without
//! a word (a PostUp with the guides' MASQUERADE rule, silently skipped, is a server that
//! reaches nothing).

use super::Config;

/// Where the file is to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// XDP and AF_XDP (`wgxdp up`).
    Xdp,
    /// The socket backend: a UDP socket and a TUN device (`wgxdp up --backend fallback`).
    Fallback,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Xdp => "XDP",
            Backend::Fallback => "the fallback backend",
        }
    }
}

/// One line per key `backend` does not apply, naming the key and what happens instead.
pub fn unapplied(config: &Config, backend: Backend) -> Vec<String> {
    let i = &config.interface;
    let on = backend.name();
    let mut out = Vec::new();
    for (key, lines) in [
        ("PreUp", &i.pre_up),
        ("PostUp", &i.post_up),
        ("PreDown", &i.pre_down),
        ("PostDown", &i.post_down),
    ] {
        if !lines.is_empty() {
            out.push(format!(
                "{key} is not run with {on} yet: run its commands yourself ({} line{})",
                lines.len(),
                if lines.len() == 1 { "" } else { "s" }
            ));
        }
    }
    if !i.dns.is_empty() {
        out.push(format!(
            "DNS is not applied with {on} (no resolvconf): set the resolver yourself"
        ));
    }
    if i.table.is_some() {
        out.push(format!("Table is not applied with {on}"));
    }
    if i.save_config {
        out.push(format!(
            "SaveConfig is not applied with {on}: live changes are not written back to the file"
        ));
    }
    if i.fwmark.is_some() {
        out.push(format!(
            "FwMark from the file is not applied with {on} (`wg set IF fwmark N` is)"
        ));
    }
    if backend == Backend::Xdp {
        if i.mtu.is_some() {
            out.push("MTU is not applied with XDP: the tunnel MTU is 1420".into());
        }
        if !i.addresses.is_empty() {
            out.push(
                "Address is assigned to no interface with XDP: the gateway itself is not reachable at it"
                    .into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        super::super::parse("t.conf", text).unwrap()
    }

    const KEY: &str = "PrivateKey = qNoBKylRuEUtBuTANIS6rSZoCqG8cFYzEWeS7fx63Vk=\n";

    #[test]
    fn every_ignored_key_is_named() {
        let c = config(&format!(
            "[Interface]\n{KEY}Address = 10.0.0.1/24\nDNS = 10.0.0.1\nMTU = 1380\nTable = off\n\
             FwMark = 51820\nSaveConfig = true\nPreUp = true\nPostUp = a\nPostUp = b\n\
             PreDown = c\nPostDown = d\n"
        ));
        let xdp = unapplied(&c, Backend::Xdp).join("\n");
        for key in [
            "PreUp",
            "PostUp",
            "PreDown",
            "PostDown",
            "DNS",
            "Table",
            "SaveConfig",
            "FwMark",
            "MTU",
            "Address",
        ] {
            assert!(xdp.contains(key), "{key} missing:\n{xdp}");
        }
        assert!(xdp.contains("(2 lines)"), "{xdp}");
        let fb = unapplied(&c, Backend::Fallback).join("\n");
        assert!(
            !fb.contains("MTU") && !fb.contains("Address"),
            "the fallback applies them"
        );
        assert!(fb.contains("PostUp"));
    }

    #[test]
    fn a_plain_file_has_nothing_to_say() {
        let c = config(&format!("[Interface]\n{KEY}ListenPort = 51820\n"));
        assert!(unapplied(&c, Backend::Xdp).is_empty());
        assert!(unapplied(&c, Backend::Fallback).is_empty());
    }
}
