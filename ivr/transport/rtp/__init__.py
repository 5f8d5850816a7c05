"""RTP, RTCP and SDP for the SIP edge: a sans-I/O core (no sockets, no clock, no event loop)."""
