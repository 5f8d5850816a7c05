"""The UAS dialog (RFC 3261 section 12): its state from the INVITE, its requests, its next hop."""

from __future__ import annotations

from ivr.transport.sip.dialog import Dialog
from ivr.transport.sip.events import Endpoint
from ivr.transport.sip.message import Request, parse_message
from tests.ivr.transport.sip.wire import linphone_invite, sipp_in_dialog, sipp_invite, trunk_invite

VIA = "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKours;rport"


def req(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def test_from_invite_12_1_1() -> None:
    source = Endpoint("198.51.100.1", 5060)
    dialog = Dialog.from_invite(req(trunk_invite()), "ours", source)
    assert dialog.id == ("1f2e3d4c@10.20.0.4", "ours", "as5e1")
    assert dialog.remote_seq == 102
    assert dialog.local_seq == 0
    assert str(dialog.remote_target) == "sip:+14155550199@10.20.0.4:5060"
    assert [r.raw for r in dialog.route_set] == ["<sip:198.51.100.1;lr;ftag=as5e1>"]
    assert dialog.local_party == "<sip:+15550100@203.0.113.5;user=phone>;tag=ours"
    assert dialog.state == "Early"
    assert dialog.secure is False


def test_secure_needs_tls_and_a_sips_request_uri() -> None:
    invite = req(sipp_invite().replace(b"INVITE sip:", b"INVITE sips:", 1))
    tls = Endpoint("192.0.2.10", 5061, "TLS", 4)
    assert Dialog.from_invite(invite, "t", tls).secure is True
    assert Dialog.from_invite(invite, "t", Endpoint("192.0.2.10", 5061)).secure is False
    assert Dialog.from_invite(req(sipp_invite()), "t", tls).secure is False


def test_cseq_order_12_2_2() -> None:
    dialog = Dialog.from_invite(req(sipp_invite()), "t", Endpoint("192.0.2.10", 5061))
    assert dialog.in_order(req(sipp_in_dialog("INFO", "t", cseq=3)))
    assert dialog.remote_seq == 3
    assert not dialog.in_order(req(sipp_in_dialog("INFO", "t", cseq=2)))
    assert dialog.in_order(req(sipp_in_dialog("INFO", "t", cseq=3)))  # equal is not lower
    assert dialog.in_order(req(sipp_in_dialog("CANCEL", "t", cseq=1)))  # CANCEL is exempt


def test_requests_count_their_cseq_up() -> None:
    dialog = Dialog.from_invite(req(sipp_invite()), "t", Endpoint("192.0.2.10", 5061))
    first, second = dialog.new_request("BYE", VIA), dialog.new_request("INFO", VIA)
    assert (first.cseq.number, second.cseq.number) == (1, 2)
    assert first.to.raw == "sipp <sip:sipp@192.0.2.10:5061>;tag=4242SIPpTag001"
    assert first.from_.tag == "t"
    assert first.max_forwards == 70
    assert first.route == ()


def test_next_hop() -> None:
    source = Endpoint("192.0.2.10", 5061)
    dialog = Dialog.from_invite(req(sipp_invite()), "t", source)
    assert dialog.next_hop() == source  # the Contact is the source: the same endpoint
    tcp = Endpoint("10.0.0.7", 38421, "TCP", 12)
    over_tcp = Dialog.from_invite(req(linphone_invite()), "t", tcp)
    assert over_tcp.next_hop() == tcp  # back on its connection
    moved = req(
        linphone_invite().replace(b"10.0.0.7:38421;transport=tcp", b"10.0.0.8;transport=tcp")
    )
    elsewhere = Dialog.from_invite(moved, "t", tcp)
    assert elsewhere.next_hop() == Endpoint("10.0.0.8", 5060, "TCP")  # the driver connects
    assert elsewhere.next_hop(symmetric=True) == tcp
    sips = req(sipp_invite().replace(b"Contact: sip:sipp@", b"Contact: sips:sipp@"))
    assert Dialog.from_invite(sips, "t", source).next_hop().transport == "TLS"
