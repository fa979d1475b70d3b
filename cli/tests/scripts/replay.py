"""Captures one outgoing WireGuard data message on IFNAME (a packet socket in the peer's
namespace) and sends it again COUNT times, each time from another UDP source port: the outer
headers are not authenticated, so every copy is an authentic replay, and different ports make
the switch spread them over the gateway's receive queues. Prints the ports used."""

import socket
import struct
import sys
import time

PACKET_OUTGOING = 4
ifname, count, wg_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL: outgoing too
s.bind((ifname, 0))
s.settimeout(20)
while True:
    frame, addr = s.recvfrom(65535)
    if addr[2] != PACKET_OUTGOING or len(frame) < 14 + 20 + 8 + 32:
        continue
    if frame[12:14] != b"\x08\x00":
        continue
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[0] >> 4 != 4 or ip[9] != 17:
        continue
    udp = ip[ihl:]
    (dport,) = struct.unpack("!H", udp[2:4])
    # A data message (type 4) with a payload: not a keepalive.
    if dport == wg_port and udp[8] == 4 and len(udp) - 8 > 32:
        break
# Let the original arrive first: then every copy is a replay. (A copy that overtakes the
# original is accepted in its place, as by the kernel, and moves the endpoint until the peer's
# next packet moves it back.)
time.sleep(0.3)
ports = []
for i in range(count):
    f = bytearray(frame)
    port = 20000 + i
    f[14 + ihl : 14 + ihl + 2] = struct.pack("!H", port)
    f[14 + ihl + 6 : 14 + ihl + 8] = b"\0\0"  # UDP checksum: none (IPv4)
    s.send(bytes(f))
    ports.append(port)
print(" ".join(map(str, ports)), flush=True)
