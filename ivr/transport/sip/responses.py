"""Building responses (RFC 3261 section 8.2.6) and choosing where they go (18.2.1, 18.2.2).

Pure functions of the request, where it came from and what the UAS decided.
A response echoes the request's Vias, From, Call-ID and CSeq as received,
and its To with our tag (8.2.6.2); the top Via gains ``received`` when the
sent-by host is not the packet's source (18.2.1), and ``rport`` (with
``received``, always) when the client asked for it (RFC 3581 section 4).
"""

from __future__ import annotations

from collections.abc import Iterable

from ivr.transport.sip.events import Endpoint
from ivr.transport.sip.grammar import Invalid
from ivr.transport.sip.headers import Via, parse_name_addr, parse_via
from ivr.transport.sip.message import Header, Request, Response, make_response
from ivr.transport.sip.status import reason_phrase


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def response_route(via: Via, source: Endpoint) -> tuple[Via, Endpoint]:
    """The top Via as the response carries it, and the response's destination.

    RFC 3261 section 18.2.2: on a stream, the connection the request came on;
    on UDP, the ``received`` address (the source) and the sent-by port, or
    5060; with ``rport`` asked, the source port (RFC 3581 section 4), which
    is what reaches a client behind NAT. ``maddr`` (multicast) is not used.
    """
    rport_asked = via.param("rport") == ""
    params: dict[str, str] = {}
    if rport_asked or _bare(via.host).lower() != source.host.lower():
        params["received"] = source.host
    if rport_asked:
        params["rport"] = str(source.port)
    edited = via.with_params(**params) if params else via
    if source.reliable:
        return edited, source
    if rport_asked:
        return edited, Endpoint(source.host, source.port)
    return edited, Endpoint(source.host, via.port or 5060)


def build_response(
    request: Request,
    status: int,
    *,
    top_via: Via,
    to_tag: str | None,
    reason: str | None = None,
    contact: str | None = None,
    record_route: bool = False,
    headers: Iterable[Header] = (),
    body: bytes = b"",
    content_type: str | None = None,
    server: str | None = None,
) -> Response:
    """A response to ``request`` (RFC 3261 section 8.2.6.2).

    ``record_route`` copies the Record-Route of a dialog-creating request
    (12.1.1); ``contact`` is ours, for responses that create or refresh a
    dialog; ``to_tag`` is added unless the request's To has a tag already.
    """
    to = request.to.raw
    if to_tag is not None and request.to.tag is None:
        to = f"{to};tag={to_tag}"
    out: list[Header] = [("Via", top_via.raw), *(("Via", v.raw) for v in request.vias[1:])]
    if record_route:
        out.extend(("Record-Route", r.raw) for r in request.record_route)
    out.append(("From", request.from_.raw))
    out.append(("To", to))
    out.append(("Call-ID", request.call_id))
    out.append(("CSeq", request.header("CSeq") or str(request.cseq)))
    stamp = request.header("Timestamp")
    if status == 100 and stamp is not None:
        out.append(("Timestamp", stamp))  # 8.2.6.1
    if contact is not None:
        out.append(("Contact", contact))
    out.extend(headers)
    if server is not None:
        out.append(("Server", server))
    if body:
        out.append(("Content-Type", content_type or "application/sdp"))
    return make_response(status, out, body, reason)


ECHOED = ("Via", "From", "To", "Call-ID", "CSeq")


def error_response_bytes(
    start_line: str,
    headers: tuple[Header, ...],
    status: int,
    reason: str,
    *,
    to_tag: str,
    source: Endpoint,
    server: str | None = None,
) -> tuple[bytes, Endpoint] | None:
    """The response to a request the parser refused, when its echoed headers were read.

    Built as bytes, not checked as a Response: the header at fault may be one
    of those echoed, and it goes back as it came. None when the start line is
    not a request's (a broken response is never answered), the request is an
    ACK (never answered, 17), or one of Via, From, To, Call-ID, CSeq is missing.
    """
    method = start_line.partition(" ")[0]
    if not method or start_line.startswith("SIP/") or method == "ACK":
        return None
    found = {name for name, _ in headers}
    if not set(ECHOED) <= found:
        return None
    destination, top = source, True
    out: list[str] = []
    seen: set[str] = set()
    for name, value in headers:
        if name not in ECHOED or (name in seen and name != "Via"):
            continue  # a second From, To, Call-ID or CSeq is the fault: echo the first
        seen.add(name)
        if name == "Via" and top:
            top = False
            try:
                via, destination = response_route(parse_via(value), source)
                value = via.raw
            except Invalid:
                pass  # echoed as it came; the answer goes back to the source
        elif name == "To":
            value = _with_tag(value, to_tag)
        out.append(f"{name}: {value}")
    if server is not None:
        out.append(f"Server: {server}")
    phrase = reason or reason_phrase(status)
    head = "\r\n".join([f"SIP/2.0 {status} {phrase}", *out, "Content-Length: 0"])
    return (head + "\r\n\r\n").encode(), destination


def _with_tag(to: str, tag: str) -> str:
    try:
        if parse_name_addr(to).tag is not None:
            return to
    except Invalid:
        return to
    return f"{to};tag={tag}"
