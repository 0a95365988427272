"""A private OpenSSH server on a free loopback port, for the ``sftp://`` provider's tests.

Started with generated host and user keys in a temporary folder, its own configuration
(key authentication only, the internal sftp subsystem) and stopped by PID. No system
configuration or ``~/.ssh`` file is read or written.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.servers import free_port

SSHD = "/usr/sbin/sshd"


class SshdServer:
    """``sshd -D`` on 127.0.0.1:``port``; ``key`` logs in as the current user."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.user = getpass.getuser()
        self.key = str(base / "user_key")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SshdServer:
        sshd = shutil.which("sshd") or SSHD
        if not os.path.exists(sshd):
            raise FileNotFoundError("sshd is missing: apt-get install openssh-server")
        host_key = self.base / "host_key"
        for path in (host_key, Path(self.key)):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True
            )
        (self.base / "authorized_keys").write_text(Path(self.key + ".pub").read_text())
        config = self.base / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}\nPidFile {self.base / 'pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\n"
        )
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        log = open(self.base / "sshd.log", "wb")  # noqa: SIM115  (kept open for the process)
        self.process = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.base / "sshd.log").read_text())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not listen within 10 s")

    def transport_params(self) -> dict[str, object]:
        """smart_open's ``transport_params`` for this server."""
        return {
            "user": self.user,
            "port": self.port,
            "connect_kwargs": {
                "key_filename": self.key,
                "allow_agent": False,
                "look_for_keys": False,
            },
        }

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
