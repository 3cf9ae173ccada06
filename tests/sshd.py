"""A real OpenSSH server for the tests: `/usr/sbin/sshd -D -e -f <config>` on a free
loopback port, run as the current user, with a host key and a client key generated for
it (`ssh-keygen`), the client's public key its only authorized key. It stands in for a
deploy host: the host is this machine, reached over SSH as any host would be.

Debian's openssh-server provides sshd (`.ci/run` installs it); without it the tests
that need it skip and say so.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for

SSHD = Path("/usr/sbin/sshd")
MISSING = "Debian's openssh-server is not installed: .ci/run installs it"


def keygen(path: Path) -> Path:
    """A fresh ed25519 key pair at `path` (and `path`.pub), no passphrase."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "steep-tests", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


class Sshd:
    """One sshd, its keys, and what a client needs to reach it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(root / "host_key")
        self.client_key = keygen(root / "client_key")
        self.authorized_keys = root / "authorized_keys"
        self.authorized_keys.write_text((root / "client_key.pub").read_text())
        self.known_hosts = root / "known_hosts"
        self.log = root / "sshd.log"
        self.user = getpass.getuser()
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The environment's `host`: user@127.0.0.1:port."""
        return f"{self.user}@127.0.0.1:{self.port}"

    def known_hosts_line(self, key: Path | None = None) -> str:
        public = (key or self.host_key).with_suffix(".pub").read_text().split()
        return f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n"

    def config(self) -> Path:
        path = self.root / "sshd_config"
        path.write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            "StrictModes no\n"  # the keys live in the test's tmp folder
            "UsePAM no\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "PrintMotd no\n"
            "LogLevel VERBOSE\n"  # a line per connection: the tests count them
            # bash reads ~/.bashrc for a command over ssh unless it is a nested shell:
            # this machine's loads pyenv (half a second a command), a host's would not
            "SetEnv SHLVL=1\n"
        )
        return path

    def start(self) -> None:
        if os.geteuid() == 0:  # privilege separation's empty folder
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for _ in range(5):  # the free port can be taken before sshd binds it
            self.port = free_port()
            log = self.log.open("ab")
            self.process = subprocess.Popen(
                [str(SSHD), "-D", "-e", "-f", str(self.config())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            log.close()
            if wait_for(self._ready, timeout=10, message="sshd to accept connections") == "up":
                self.known_hosts.write_text(self.known_hosts_line())
                return
        raise AssertionError(f"sshd did not start: {self.log.read_text()[-2000:]}")

    def _ready(self) -> str | None:
        assert self.process is not None
        if self.process.poll() is not None:
            return "exited"
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn,
        ):
            conn.settimeout(2)
            if conn.recv(64).startswith(b"SSH-2.0-"):
                return "up"
        return None

    def connections(self) -> int:
        """How many connections sshd has received so far."""
        return self.log.read_text(errors="replace").count("Connection from ")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    if not SSHD.is_file():
        pytest.skip(MISSING)
    server = Sshd(tmp_path / "sshd")
    server.start()
    yield server
    server.stop()
