//! Consul poll (placeholder; owned by the Consul client work).
