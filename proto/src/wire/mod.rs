//! Typed views of the Ethernet, IP and UDP headers the data path needs (in progress).
