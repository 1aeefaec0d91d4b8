//! IPVS generic netlink message encoding and decoding (placeholder; owned by the netlink work).
