//! Non-blocking TCP probes on the mio loop (placeholder; owned by the probe work).
