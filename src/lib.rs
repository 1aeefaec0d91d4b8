//! consul-ipvs: keeps the kernel's IPVS table in sync with the backends
//! registered in Consul (or listed statically), checks them with its own TCP
//! probes, and drains by weight 0 so established sessions keep flowing.
//!
//! The pure core (config, model, health, plan) does no I/O; the shell
//! (consul client, probes, netlink, daemon loop) does.

pub mod cli;
pub mod config;
pub mod consul;
pub mod daemon;
pub mod engine;
pub mod health;
pub mod ipvs;
pub mod model;
pub mod probe;
