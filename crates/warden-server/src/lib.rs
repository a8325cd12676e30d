//! Warden governance server (being built).
