//! Consul parse (placeholder; owned by the Consul client work).
