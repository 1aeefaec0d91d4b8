//! Generic netlink transport to the kernel's IPVS family (placeholder; owned by the netlink work).
