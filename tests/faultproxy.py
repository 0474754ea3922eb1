"""A TCP proxy on loopback that tests can cut, slow down and restore.

Placed between wxtiles and the S3 server it turns "the store is down" and "the
store is slow" into real network behaviour (refused connections, stalled
responses) while the S3 server behind it keeps its data.

It runs in a process of its own, as a real store would: in the test process,
its relay threads would need the GIL, and rasterio holds the GIL through some
of GDAL's reads, which then wait forever for a relay that cannot run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time


class FaultProxy:
    """Test-side handle: each call is a command to the proxy process, acknowledged before it returns."""

    def __init__(self, target_port: int, port: int) -> None:
        self.port = port
        self._delay_s = 0.0
        self._process = subprocess.Popen(
            [sys.executable, "-u", __file__, str(target_port), str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Store up: accept and relay connections."""
        self._command("start")
        return self

    def stop(self) -> None:
        """Store down: new connections are refused, open ones are cut."""
        self._command("stop")

    @property
    def delay_s(self) -> float:
        return self._delay_s

    @delay_s.setter
    def delay_s(self, seconds: float) -> None:
        """Store slow: every response chunk waits this long."""
        self._command(f"delay {seconds}")
        self._delay_s = seconds

    def close(self) -> None:
        if self._process.poll() is None:
            self._command("exit")
            self._process.wait(timeout=10)

    def _command(self, line: str) -> None:
        assert self._process.stdin and self._process.stdout
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        if self._process.stdout.readline().strip() != "ok":
            raise RuntimeError(f"fault proxy did not acknowledge {line!r}")


class _Relay:
    """The proxy itself, in the proxy process."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = port
        self.delay_s = 0.0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, is_response: bool) -> None:
        try:
            while data := source.recv(65536):
                if is_response and self.delay_s:
                    time.sleep(self.delay_s)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def main(target_port: int, port: int) -> None:
    """Commands on stdin, one per line (start, stop, delay SECONDS, exit); "ok" on stdout for each."""
    relay = _Relay(target_port, port)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "start":
            relay.start()
        elif command == "stop":
            relay.stop()
        elif command == "delay":
            relay.delay_s = float(argument)
        elif command == "exit":
            relay.stop()
            print("ok", flush=True)
            return
        print("ok", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
