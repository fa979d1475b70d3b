//! What a backend does not do with a wg-quick file yet: every key a user wrote that would be
//! ignored (or applied only in part) is named, so that `wgxdp check` and `wgxdp up` never call such a file "OK" without
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
///
/// Both backends apply what wg-quick applies around the interface (`wgxdp up`/`down`):
/// Address, MTU, DNS (through resolvconf; `up` refuses the file where it is missing, as
/// wg-quick would fail), Table, SaveConfig and the four hooks. What is left: FwMark from the
/// file, and wg-quick's policy routing for a default route in the main table.
pub fn unapplied(config: &Config, backend: Backend) -> Vec<String> {
    let i = &config.interface;
    let on = backend.name();
    let mut out = Vec::new();
    if i.fwmark.is_some() {
        out.push(format!(
            "FwMark from the file is not applied with {on} (`wg set IF fwmark N` is)"
        ));
    }
    let main_table = i
        .table
        .as_deref()
        .is_none_or(|t| t.eq_ignore_ascii_case("auto"));
    let defaults: Vec<String> = config
        .peers
        .iter()
        .flat_map(|p| &p.allowed_ips)
        .filter(|a| a.prefix_len() == 0)
        .map(ToString::to_string)
        .collect();
    if main_table && !defaults.is_empty() {
        out.push(format!(
            "AllowedIPs {} get no route into the interface with {on}: wg-quick's policy routing \
             for default routes (fwmark table and rules) is not done; the gateway's own traffic \
             keeps its default route (Table = N puts them into table N)",
            defaults.join(", ")
        ));
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
        for backend in [Backend::Xdp, Backend::Fallback] {
            let said = unapplied(&c, backend).join("\n");
            assert!(said.contains("FwMark"), "FwMark missing:\n{said}");
            // Applied by `wgxdp up`/`down` on both backends now.
            for key in [
                "PreUp",
                "PostUp",
                "PreDown",
                "PostDown",
                "DNS",
                "Table",
                "MTU",
                "Address",
                "SaveConfig",
            ] {
                assert!(!said.contains(key), "{key} is applied:\n{said}");
            }
        }
    }

    #[test]
    fn a_default_route_in_the_main_table_is_named() {
        let peer = "[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
                    AllowedIPs = 10.0.0.2/32, 0.0.0.0/0, ::/0\n";
        let c = config(&format!("[Interface]\n{KEY}{peer}"));
        let said = unapplied(&c, Backend::Xdp).join("\n");
        assert!(said.contains("0.0.0.0/0, ::/0"), "{said}");
        assert!(!said.contains("10.0.0.2"), "{said}");
        let c = config(&format!("[Interface]\n{KEY}Table = 1234\n{peer}"));
        assert!(
            unapplied(&c, Backend::Xdp).is_empty(),
            "table 1234 takes them"
        );
        let c = config(&format!("[Interface]\n{KEY}Table = off\n{peer}"));
        assert!(unapplied(&c, Backend::Xdp).is_empty(), "no routes wanted");
    }

    #[test]
    fn a_plain_file_has_nothing_to_say() {
        let c = config(&format!("[Interface]\n{KEY}ListenPort = 51820\n"));
        assert!(unapplied(&c, Backend::Xdp).is_empty());
        assert!(unapplied(&c, Backend::Fallback).is_empty());
    }
}
