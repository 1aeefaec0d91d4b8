//! Consul client (placeholder; owned by the Consul client work).
