"""SIP signalling, sans-I/O (RFC 3261): bytes and `now` in; events, bytes and timers out."""
