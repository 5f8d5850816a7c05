"""The asyncio edge for SIP and RTP: sockets and timers around the sans-I/O cores.

:mod:`ivr.transport.sip` and :mod:`ivr.transport.rtp` compute; this package
does the I/O. :class:`SipEdge` (:mod:`.edge`) listens on UDP and TCP,
drives one :class:`~ivr.transport.sip.SipCore` and its timers, and checks
each new INVITE (number, caller id, call limits). Each accepted call is a
:class:`SipCall` (:mod:`.call`): its RTP and RTCP sockets
(:mod:`.media`), the offer/answer, and the caller leg's transport, so a SIP
caller's frames and digits reach the session exactly as a WebSocket
caller's do, and the call is placed by the same function
(:mod:`ivr.transport.placement`). INFO bodies are read in :mod:`.info`.
"""

from ivr.transport.sipedge.call import SipCall
from ivr.transport.sipedge.edge import SipEdge, dialled_number

__all__ = ["SipCall", "SipEdge", "dialled_number"]
