//! The anti-replay window (in progress).
