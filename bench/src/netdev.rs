//! Interface counters of the calling thread's network namespace (`/proc/thread-self/net/dev`):
//! the frames an interface received, counted by the kernel before any socket, so a sink that
//! cannot keep up still has an exact count of what the gateway delivered.

/// Received packets of `ifname`, as the kernel counts them.
pub fn rx_packets(ifname: &str) -> Result<u64, String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/dev")
        .map_err(|e| format!("/proc/thread-self/net/dev: {e}"))?;
    parse_rx_packets(&text, ifname).ok_or_else(|| format!("{ifname}: not in /proc/net/dev"))
}

fn parse_rx_packets(text: &str, ifname: &str) -> Option<u64> {
    text.lines().skip(2).find_map(|l| {
        let (name, rest) = l.split_once(':')?;
        (name.trim() == ifname).then(|| rest.split_whitespace().nth(1)?.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_rx_packets_column() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n  \
  lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n\
 sv1s: 1234567   8910    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n";
        assert_eq!(super::parse_rx_packets(text, "sv1s"), Some(8910));
        assert_eq!(super::parse_rx_packets(text, "lo"), Some(0));
        assert_eq!(super::parse_rx_packets(text, "x"), None);
    }
}
