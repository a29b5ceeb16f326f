//! Simulated connections without sockets, for the million-connection
//! benchmark (being written).
