#!/usr/bin/env python3
"""tests/net/lossy_relay.py: a lossy two-port switch for the net test bed.

Used where the kernel has no netem. Runs inside a relay namespace that sits
between one host and the bed's bridge, and copies every Ethernet frame
between its two interfaces (raw AF_PACKET sockets), so addresses stay what
they are: no NAT, no proxying. On the way it
  - drops --udp-loss percent of IPv4 UDP datagrams (the DHT), each way;
  - about every --tcp-cut-every seconds, cuts one TCP connection: the
    segment that passes is replaced by a RST to its receiver and a RST goes
    back to its sender (the sequence numbers are taken from the segment, so
    both ends accept them and drop the connection). Only a connection that
    has carried GRACE_SEGMENTS segments is cut, so the one that replaces it
    always gets some work done (otherwise each retry would be cut at once).
Frames it forwards get their TCP checksum recomputed and UDP checksum
cleared (veth leaves them to offload). Prints its counters every few seconds.
"""
import argparse
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
FRAME_MAX = 65536
STATS_EVERY_S = 5.0
# Segments a connection carries (both ways) before it may be cut.
GRACE_SEGMENTS = 12
# Connections tracked at once; the table is emptied beyond that.
CONNS_MAX = 4096


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_checksum(src, dst, segment):
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    return checksum(pseudo + segment)


def ipv4_header(ip, total_len):
    """The IPv4 header ip (bytes) with a new total length and checksum."""
    h = bytearray(ip)
    struct.pack_into("!H", h, 2, total_len)
    struct.pack_into("!H", h, 10, 0)
    struct.pack_into("!H", h, 10, checksum(bytes(h)))
    return bytes(h)


def rst_frame(eth_dst, eth_src, ip_hdr, src_ip, dst_ip, sport, dport, seq):
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x04, 0, 0, 0))
    struct.pack_into("!H", tcp, 16, tcp_checksum(src_ip, dst_ip, bytes(tcp)))
    ip = bytearray(ip_hdr[:20])
    ip[0] = 0x45
    ip[12:16] = src_ip
    ip[16:20] = dst_ip
    return eth_dst + eth_src + b"\x08\x00" + ipv4_header(bytes(ip), 20 + len(tcp)) + bytes(tcp)


class Relay:
    def __init__(self, args):
        self.loss = args.udp_loss / 100.0
        self.cut_every = args.tcp_cut_every
        self.next_cut = time.monotonic() + self.draw_cut()
        self.stats = dict(frames=0, udp=0, udp_dropped=0, tcp=0, tcp_cuts=0, too_big=0)
        self.conns = {}  # both ends' (ip, port), sorted -> segments seen
        self.socks = {}
        for name in (args.a, args.b):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((name, 0))
            self.socks[name] = s
        self.other = {args.a: self.socks[args.b], args.b: self.socks[args.a]}

    def draw_cut(self):
        if self.cut_every <= 0:
            return float("inf")
        return random.uniform(0.5, 1.5) * self.cut_every

    def send(self, sock, frame):
        try:
            sock.send(frame)
        except OSError:
            self.stats["too_big"] += 1

    def forward(self, name, frame):
        out = self.other[name]
        self.stats["frames"] += 1
        if len(frame) < 34 or frame[12:14] != b"\x08\x00":
            self.send(out, frame)  # ARP, IPv6: as they are
            return
        ihl = (frame[14] & 0x0F) * 4
        proto = frame[23]
        total = struct.unpack_from("!H", frame, 16)[0]
        l4 = 14 + ihl
        end = 14 + total
        if proto == 17 and end >= l4 + 8:
            self.stats["udp"] += 1
            if random.random() < self.loss:
                self.stats["udp_dropped"] += 1
                return
            f = bytearray(frame)
            struct.pack_into("!H", f, l4 + 6, 0)  # no checksum (allowed in IPv4)
            self.send(out, bytes(f))
            return
        if proto == 6 and end >= l4 + 20:
            self.stats["tcp"] += 1
            flags = frame[l4 + 13]
            ends = sorted([(frame[26:30], frame[l4:l4 + 2]), (frame[30:34], frame[l4 + 2:l4 + 4])])
            key = (ends[0], ends[1])
            if len(self.conns) >= CONNS_MAX:
                self.conns.clear()
            seen = self.conns.get(key, 0) + 1
            self.conns[key] = seen
            # Cut an established connection (ACK set, not SYN/RST/FIN).
            if (time.monotonic() >= self.next_cut and seen > GRACE_SEGMENTS and flags & 0x10 and
                    not flags & 0x07):
                del self.conns[key]
                self.cut(name, frame, l4)
                return
            f = bytearray(frame[:end])
            struct.pack_into("!H", f, l4 + 16, 0)
            src, dst = bytes(f[26:30]), bytes(f[30:34])
            struct.pack_into("!H", f, l4 + 16, tcp_checksum(src, dst, bytes(f[l4:end])))
            self.send(out, bytes(f))
            return
        self.send(out, frame)

    def cut(self, name, frame, l4):
        self.next_cut = time.monotonic() + self.draw_cut()
        self.stats["tcp_cuts"] += 1
        eth_dst, eth_src = frame[0:6], frame[6:12]
        ip_hdr = frame[14:l4]
        src, dst = frame[26:30], frame[30:34]
        sport, dport, seq, ack = struct.unpack_from("!HHII", frame, l4)
        # To the receiver, as if from the sender; back to the sender, as if from the receiver.
        self.send(self.other[name], rst_frame(eth_dst, eth_src, ip_hdr, src, dst, sport, dport, seq))
        self.send(self.socks[name], rst_frame(eth_src, eth_dst, ip_hdr, dst, src, dport, sport, ack))

    def print_stats(self):
        print("relay " + " ".join("%s=%d" % kv for kv in self.stats.items()), flush=True)

    def run(self, lifetime_s):
        by_fd = {s.fileno(): name for name, s in self.socks.items()}
        last = start = time.monotonic()
        while time.monotonic() - start < lifetime_s:
            ready, _, _ = select.select(list(self.socks.values()), [], [], 1.0)
            for s in ready:
                frame, addr = s.recvfrom(FRAME_MAX)
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own copies going out
                self.forward(by_fd[s.fileno()], frame)
            if time.monotonic() - last >= STATS_EVERY_S:
                last = time.monotonic()
                self.print_stats()
        print("relay: lifetime over, exiting", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="one interface")
    p.add_argument("--b", required=True, help="the other interface")
    p.add_argument("--udp-loss", type=float, default=20.0, help="percent of UDP datagrams dropped")
    p.add_argument("--tcp-cut-every", type=float, default=40.0,
                   help="seconds between TCP connection cuts, on average (0: never)")
    p.add_argument("--lifetime", type=float, default=900.0,
                   help="exit after this many seconds even if nobody stops the relay")
    args = p.parse_args()
    relay = Relay(args)

    def stop(_sig, _frame):
        relay.print_stats()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    relay.run(args.lifetime)


if __name__ == "__main__":
    main()
