#!/usr/bin/env python3
"""Writes fuzz/seeds/ptp_auth_verify: one PTP message of each type lockstep sends, signed
with the AUTHENTICATION TLV as src/ptp/auth.rs documents it, by Python's own hmac.

The key is bytes 0..31, keyID 1, SPP 0: the key of fuzz_targets/ptp_auth_verify.rs and of
the cross-check in tests/ptp_auth.rs, which verifies these files with lockstep's code.
Run from the repository root: python3 fuzz/make_ptp_auth_seeds.py
"""
import hashlib
import hmac
import os
import struct

KEY = bytes(range(32))
KEY_ID = 1
SPP = 0
OUT = "fuzz/seeds/ptp_auth_verify"

MASTER = bytes([0x00, 0x1B, 0x21, 0xFF, 0xFE, 0, 0, 1]) + struct.pack(">H", 1)
SLAVE = bytes([0x02, 0, 0, 0xFF, 0xFE, 0, 0, 2]) + struct.pack(">H", 1)


def timestamp(seconds, nanoseconds):
    return struct.pack(">Q", seconds)[2:] + struct.pack(">I", nanoseconds)


def header(msg_type, control, source, seq, flags=0, log_interval=0x7F):
    # messageLength (bytes 2..4) is filled in by sign().
    return (bytes([msg_type, 0x02]) + b"\0\0" + bytes([0, 0]) + struct.pack(">H", flags)
            + struct.pack(">q", 0) + b"\0" * 4 + source + struct.pack(">H", seq)
            + bytes([control, log_interval & 0xFF]))


def sign(message):
    length = len(message) + 26
    message = message[:2] + struct.pack(">H", length) + message[4:]
    covered = message + struct.pack(">HHBBI", 0x8009, 22, SPP, 0, KEY_ID)
    icv = hmac.new(KEY, covered, hashlib.sha256).digest()[:16]
    return covered + icv


announce_body = (timestamp(1000, 0) + struct.pack(">h", 37) + bytes([0, 128, 248, 0xFE])
                 + struct.pack(">H", 0xFFFF) + bytes([128]) + MASTER[:8]
                 + struct.pack(">H", 0) + bytes([0xA0]))
request = struct.pack(">HH", 0x0004, 6) + bytes([0x00, (-9) & 0xFF]) + struct.pack(">I", 2)
grant = (struct.pack(">HH", 0x0005, 8) + bytes([0x00, (-9) & 0xFF]) + struct.pack(">I", 2)
         + bytes([0, 0]))

seeds = {
    "00-sync": header(0x0, 0, MASTER, 1, flags=0x0200, log_interval=-4) + timestamp(1000, 5),
    "01-follow_up": header(0x8, 2, MASTER, 1, log_interval=-4) + timestamp(1000, 250_000),
    "02-delay_req": header(0x1, 1, SLAVE, 3) + timestamp(0, 0),
    "03-delay_resp": header(0x9, 3, MASTER, 3, log_interval=-4) + timestamp(1000, 900_000)
    + SLAVE,
    "04-announce": header(0xB, 5, MASTER, 4, log_interval=0) + announce_body,
    "05-signaling_request": header(0xC, 5, SLAVE, 5) + MASTER + request,
    "06-signaling_grant": header(0xC, 5, MASTER, 6) + SLAVE + grant,
}

os.makedirs(OUT, exist_ok=True)
for name, message in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(sign(message))
