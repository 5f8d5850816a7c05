"""Drivers for real SIP user agents (SIPp, baresip, linphone), for integration tests.

Each driver runs its tool headless on loopback, bounded in time, and always
ends it (by its own process group) when done; see docs/sip.md for how to
use them against ``ivr serve --sip-port``. :mod:`.uas` is a tiny UAS and
RTP sink of our own that the drivers' tests call into.
"""
