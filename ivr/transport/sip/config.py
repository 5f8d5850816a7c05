"""What the SIP core needs to know about itself: its address, its timers, its extensions."""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr.transport.sip.events import Transport
from ivr.transport.sip.transaction import TimerSettings


@dataclass(frozen=True, slots=True)
class SipConfig:
    """``host`` is how peers reach us, as it goes in a URI (an IPv6 address in brackets):
    the sent-by of our Vias and the host of our Contact."""

    host: str
    udp_port: int = 5060
    tcp_port: int = 5060
    tls_port: int = 5061
    user: str = "ivr"  # the user part of our Contact
    timers: TimerSettings = field(default_factory=TimerSettings)
    # Option tags a Require may name (RFC 3261 8.2.2.3); none yet, so 100rel, timer... get 420.
    supported: frozenset[str] = frozenset()
    server: str | None = "ivr"  # the Server header of our responses (20.35); None: none
    # Send our in-dialog requests to where the INVITE came from rather than to its
    # Contact: for phones behind NAT that put a private address there.
    symmetric: bool = False

    def port(self, transport: Transport) -> int:
        return {"UDP": self.udp_port, "TCP": self.tcp_port, "TLS": self.tls_port}[transport]

    def contact(self, transport: Transport) -> str:
        """Our Contact for a dialog on ``transport`` (12.1.1; sips for TLS, 8.1.1.8)."""
        scheme = "sips" if transport == "TLS" else "sip"
        suffix = ";transport=tcp" if transport == "TCP" else ""
        return f"<{scheme}:{self.user}@{self.host}:{self.port(transport)}{suffix}>"

    def via(self, transport: Transport, branch: str) -> str:
        """The Via of our requests, asking for rport (RFC 3581 section 3)."""
        return f"SIP/2.0/{transport} {self.host}:{self.port(transport)};branch={branch};rport"
