"""SIP signalling, sans-I/O (RFC 3261): bytes and clock readings in; events, bytes and timers out."""
