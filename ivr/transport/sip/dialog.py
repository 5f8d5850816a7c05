"""A dialog as the UAS holds it (RFC 3261 section 12), and the requests it sends in it.

Created from the INVITE (12.1.1): the Call-ID, our tag and theirs, the
remote sequence number, the route set from Record-Route in the order it
came, the remote target from Contact, and the secure flag. Our requests
in it (BYE now) follow 12.2.1.1: CSeq one higher each time, the route set
as Route headers, the Request-URI by loose or strict routing. The next hop
is the first route or the remote target (8.1.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ivr.transport.sip.events import Endpoint, Transport
from ivr.transport.sip.headers import NameAddr
from ivr.transport.sip.message import Header, Request, make_request
from ivr.transport.sip.uri import Uri

DialogState = Literal["Early", "Confirmed", "Terminated"]
DialogId = tuple[str, str, str]  # Call-ID, local tag, remote tag (12)


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # the INVITE's To with our tag: our From in requests
    remote_party: str  # the INVITE's From, their tag included: our To
    remote_seq: int
    remote_target: Uri
    route_set: tuple[NameAddr, ...]
    secure: bool
    source: Endpoint  # where the INVITE came from
    local_seq: int = 0  # empty until our first request (12.1.1); then 1, 2...
    state: DialogState = field(default="Early")

    @property
    def id(self) -> DialogId:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_invite(cls, request: Request, local_tag: str, source: Endpoint) -> Dialog:
        """RFC 3261 section 12.1.1, UAS side."""
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_party=request.to.with_tag(local_tag).raw,
            remote_party=request.from_.raw,
            remote_seq=request.cseq.number,
            remote_target=request.contacts[0].uri,
            route_set=request.record_route,
            secure=source.transport == "TLS" and request.uri.scheme == "sips",
            source=source,
        )

    def in_order(self, request: Request) -> bool:
        """RFC 3261 section 12.2.2: a lower CSeq than the last one is out of order (500).

        ACK and CANCEL carry their INVITE's number and are not counted.
        """
        if request.method in ("ACK", "CANCEL"):
            return True
        if request.cseq.number < self.remote_seq:
            return False
        self.remote_seq = request.cseq.number
        return True

    def refresh_target(self, request: Request) -> None:
        """A target refresh request (re-INVITE) replaces the remote target (12.2.2)."""
        if request.contacts and request.contacts[0].uri.is_sip:
            self.remote_target = request.contacts[0].uri

    def new_request(self, method: str, via: str, extra: tuple[Header, ...] = ()) -> Request:
        """A request within the dialog (RFC 3261 section 12.2.1.1)."""
        self.local_seq += 1
        uri = self.remote_target
        routes = [r.raw for r in self.route_set]
        if self.route_set and self.route_set[0].uri.param("lr") is None:
            # strict routing: the first route is the Request-URI, the target goes last
            uri = _strip_for_request_uri(self.route_set[0].uri)
            routes = [*routes[1:], f"<{self.remote_target}>"]
        headers: list[Header] = [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", self.local_party),
            ("To", self.remote_party),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.local_seq} {method}"),
            *(("Route", r) for r in routes),
            *extra,
        ]
        return make_request(method, uri, headers)

    def next_hop(self, symmetric: bool = False) -> Endpoint:
        """Where our requests in the dialog go (RFC 3261 section 8.1.2; RFC 3263 is the driver's).

        The first route, or else the remote target. Back on the INVITE's own
        connection when that is where the hop is (RFC 5923's reuse). With
        ``symmetric``, the INVITE's source whatever Contact says, for clients
        behind NAT whose Contact holds a private address.
        """
        if symmetric and not self.route_set:
            return self.source
        hop = self.route_set[0].uri if self.route_set else self.remote_target
        host = hop.param("maddr") or hop.bare_host
        port = hop.port or hop.default_port
        transport: Transport
        if hop.param("transport") or hop.scheme == "sips":
            name = hop.transport
            transport = "TLS" if name == "TLS" else "TCP" if name == "TCP" else "UDP"
        else:
            transport = self.source.transport if self.source.reliable else "UDP"
        same = (host.lower(), port) == (self.source.host.lower(), self.source.port)
        if same and transport == self.source.transport:
            return self.source
        return Endpoint(host, port, transport)


def _strip_for_request_uri(uri: Uri) -> Uri:
    """12.2.1.1 with 19.1.1: a URI used as Request-URI loses method and headers."""
    params = tuple((k, v) for k, v in uri.params if k != "method")
    return Uri(uri.scheme, uri.host, uri.user, uri.password, uri.port, params, "", uri.opaque)
