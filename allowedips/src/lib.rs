//! Cryptokey routing at provider scale: the compact, lock-free allowed-IPs table of the data path
//! (work in progress).
