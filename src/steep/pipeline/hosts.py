"""Where a `releases` deploy happens: this machine, or a host over SSH.

A target owns an environment's folder (`path`: releases/, shared/, current) and does
the few things a deploy needs there: make the folders, unpack an artifact into a
release, link the shared paths in, switch `current`, say where it points, list and
remove releases, and run a hook or the restart command in a release with the deploy's
variables. `steep.pipeline.deploy` keeps the phases, the same for both.

Over SSH every operation is one run of the system's OpenSSH client (an argv list),
with `BatchMode=yes` (never a prompt), the server's key and strict host key checking.
ssh hands the remote side one string, so every value in it is quoted with
`shlex.quote`; the commands of the deploy (which carry its variables) go on ssh's
stdin, never on a command line that `ps` shows. The host needs sh, tar, ln and mv.
A failed connection is told in one line: the host and port, and what to do. A
deploy's operations share one connection (ssh's ControlMaster), let go when it ends.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shlex
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from steep.pipeline import runner
from steep.pipeline.config import SshSettings
from steep.pipeline.environments import Environment

OPERATION_TIMEOUT = 900.0  # seconds for one operation over SSH (an unpack of a large tar)
CONTROL_PERSIST = 30  # seconds a host's shared connection outlives its last use
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class DeployFailed(Exception):
    """A phase failed; the message says which and why."""


class Target(Protocol):
    """The machine an environment's releases live on."""

    where: str  # for messages: "this machine", "deploy@web1:22"
    root: str  # the environment's path there

    def path(self, *parts: str) -> str: ...
    def prepare(self) -> None: ...
    def current_release(self) -> str | None: ...
    def releases(self) -> list[str]: ...
    def has_release(self, name: str) -> bool: ...
    def unpack(self, artifact: Path, into: str) -> None: ...
    def link_shared(self, release: str, shared: Sequence[str]) -> None: ...
    def switch(self, release: str) -> None: ...
    def remove_releases(self, names: Sequence[str]) -> None: ...
    def local_dir(self) -> Path | None: ...
    def close(self) -> None: ...
    def run(
        self,
        script: str,
        cwd: str,
        variables: dict[str, str],
        timeout: float,
        on_line: Callable[[str], None],
    ) -> runner.Outcome: ...


def target(env: Environment, ssh: SshSettings) -> Target:
    """The target of an environment: its `host` over SSH, else this machine."""
    if env.host:
        return OverSsh(env.host, env.path or ".", ssh)
    return ThisMachine(env.path or ".")


# -- this machine -----------------------------------------------------------------------


def unpack_here(artifact: Path, into: Path) -> None:
    """Unpack the tar into `into` whole: into a .partial folder, then renamed."""
    partial = into.with_name(into.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(artifact) as tar:
        tar.extractall(partial, filter="data")
    os.replace(partial, into) if not into.exists() else shutil.rmtree(partial)


class ThisMachine:
    """The releases in a folder of the machine the deploy runs on."""

    where = "this machine"

    def __init__(self, root: str) -> None:
        self.root = root
        self.folder = Path(root)

    def path(self, *parts: str) -> str:
        return str(self.folder.joinpath(*parts))

    def prepare(self) -> None:
        (self.folder / "releases").mkdir(parents=True, exist_ok=True)
        (self.folder / "shared").mkdir(exist_ok=True)

    def current_release(self) -> str | None:
        try:
            return Path(os.readlink(self.folder / "current")).name
        except OSError:
            return None

    def releases(self) -> list[str]:
        folder = self.folder / "releases"
        return [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []

    def has_release(self, name: str) -> bool:
        return (self.folder / "releases" / name).is_dir()

    def unpack(self, artifact: Path, into: str) -> None:
        unpack_here(artifact, Path(into))

    def link_shared(self, release: str, shared: Sequence[str]) -> None:
        folder = self.folder / "shared"
        for name in shared:
            target = folder / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = Path(release) / name
                if source.exists():  # the first deploy seeds shared/ from the release
                    shutil.move(str(source), target)
                elif name.endswith("/"):
                    target.mkdir(parents=True)
                else:
                    target.touch()
            link = Path(release) / name.rstrip("/")
            if link.is_symlink() or link.is_file():
                link.unlink()
            elif link.is_dir():
                shutil.rmtree(link)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(target.resolve())

    def switch(self, release: str) -> None:
        temporary = self.folder / f".current.{os.getpid()}"
        if temporary.is_symlink():
            temporary.unlink()
        temporary.symlink_to(Path("releases") / release)
        os.replace(temporary, self.folder / "current")

    def remove_releases(self, names: Sequence[str]) -> None:
        for name in names:
            shutil.rmtree(self.folder / "releases" / name, ignore_errors=True)

    def local_dir(self) -> Path | None:
        current = self.folder / "current"
        return current if current.exists() else self.folder

    def close(self) -> None:
        pass

    def run(
        self,
        script: str,
        cwd: str,
        variables: dict[str, str],
        timeout: float,
        on_line: Callable[[str], None],
    ) -> runner.Outcome:
        environ = {**runner.base_environment(), **variables}
        return runner.run(script, Path(cwd), environ, timeout, on_line, lambda: None)


# -- a host over SSH --------------------------------------------------------------------


def parse_host(host: str) -> tuple[str | None, str, int]:
    """(user, host name, port) of `user@host`, `user@host:port` or `host`."""
    user, _, rest = host.rpartition("@")
    name, _, port = rest.partition(":")
    return user or None, name, int(port) if port else 22


def exports(variables: dict[str, str]) -> str:
    """Shell lines that export `variables`, every value quoted."""
    lines = []
    for name, value in variables.items():
        if not NAME_RE.match(name):
            raise DeployFailed(f"{name!r} is not a variable name a shell can export")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines)


def remote_script(script: str, cwd: str, variables: dict[str, str]) -> str:
    """What `sh -s` on the host reads to run `script` in `cwd` with `variables`."""
    return (
        exports(variables)
        + f"cd {shlex.quote(cwd)} || exit 1\n"
        + f"exec /bin/sh -c {shlex.quote(script)} < /dev/null\n"
    )


class OverSsh:
    """The releases in a folder of a host, reached with the system's `ssh`."""

    def __init__(self, host: str, root: str, settings: SshSettings) -> None:
        self.user, self.hostname, self.port = parse_host(host)
        self.where = f"{self.user + '@' if self.user else ''}{self.hostname}:{self.port}"
        self.root = root
        self.settings = settings

    def path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    # the one place ssh is run ----------------------------------------------------------

    def argv(self, command: str) -> list[str]:
        """The ssh command line that runs `command` (one string) on the host."""
        return [*self.options(), "--", self.hostname, command]

    def options(self) -> list[str]:
        """ssh and its options, up to the host name."""
        s = self.settings
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
        argv += ["-o", f"ConnectTimeout={max(1, round(s.connect_timeout))}"]
        checking = "accept-new" if s.accept_new_host_keys else "yes"
        argv += ["-o", f"StrictHostKeyChecking={checking}"]
        if s.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={_option_path(s.known_hosts)}"]
            argv += ["-o", "GlobalKnownHostsFile=/dev/null"]  # that file alone decides
        if s.key is not None:
            argv += ["-i", str(s.key), "-o", "IdentitiesOnly=yes"]
        if (control := _control_dir()) is not None:
            # one connection per host, shared by a deploy's operations for a while: an
            # operation costs a round trip, not a handshake
            argv += ["-o", "ControlMaster=auto", "-o", f"ControlPath={control}/%C"]
            argv += ["-o", f"ControlPersist={CONTROL_PERSIST}"]
        for option in s.options:
            argv += ["-o", option]
        argv += ["-p", str(self.port)]
        if self.user:
            argv += ["-l", self.user]
        return argv

    def _environ(self) -> dict[str, str]:
        environ = runner.base_environment()
        if "SSH_AUTH_SOCK" in os.environ:  # no ssh_key: an agent's keys
            environ["SSH_AUTH_SOCK"] = os.environ["SSH_AUTH_SOCK"]
        return environ

    def _check_key(self) -> None:
        key = self.settings.key
        if key is not None and not key.is_file():
            raise DeployFailed(
                f"[pipeline] ssh_key: no such file {key} (the CI server's steep.toml):"
                f" not connecting to {self.where}"
            )
        known = self.settings.known_hosts
        if known is not None and not known.parent.is_dir():
            raise DeployFailed(f"[pipeline] ssh_known_hosts: no folder {known.parent}")

    def failure(self, errors: str) -> str | None:
        """One line saying why ssh could not log in, from what it printed; None when the
        text is not ssh's own (the remote command's exit code 255)."""
        s = self.settings
        key = str(s.key) if s.key else "ssh's default keys"
        known = str(s.known_hosts) if s.known_hosts else "~/.ssh/known_hosts"
        told = {
            "UNPROTECTED PRIVATE KEY FILE": f"[pipeline] ssh_key {key}: its permissions are"
            " too open for ssh (chmod 600 it)",
            "invalid format": f"[pipeline] ssh_key {key} is not a private key ssh can read",
            "Connection refused": f"cannot reach {self.where}: connection refused",
            "timed out": f"cannot reach {self.where}: no answer in {s.connect_timeout:g} s"
            " ([pipeline] ssh_connect_timeout)",
            "Could not resolve hostname": f"cannot reach {self.where}: unknown host name",
            "No route to host": f"cannot reach {self.where}: no route to host",
            "Network is unreachable": f"cannot reach {self.where}: the network is unreachable",
            "REMOTE HOST IDENTIFICATION HAS CHANGED": f"the host key of {self.where} has"
            f" changed: it does not match {known} (if the host was reinstalled, remove the"
            f" old key with ssh-keygen -R and add the new one)",
            "Host key verification failed": f"the host key of {self.where} is unknown: not"
            f" in {known} (add it with ssh-keyscan -p {self.port} {self.hostname}, or set"
            " ssh_accept_new_host_keys = true in [pipeline])",
            "Permission denied": f"{self.where} refused the login with {key} (is its public"
            " key in the user's authorized_keys?)",
            "Connection closed": f"{self.where} closed the connection before the login",
            "Connection reset": f"{self.where} reset the connection before the login",
        }
        for text, why in told.items():
            if text in errors:
                return why
        last = [line for line in errors.splitlines() if line.startswith("ssh:")]
        return f"ssh to {self.where} failed: {last[-1][4:].strip()}" if last else None

    # the operations -------------------------------------------------------------------

    def prepare(self) -> None:
        q = shlex.quote
        self._op(None, f"mkdir -p -- {q(self.path('releases'))} {q(self.path('shared'))}\n")

    def _op(self, cwd: str | None, script: str, stdin: BinaryIO | None = None) -> str:
        """Run a script of steep's own (paths, never a secret) in `cwd` on the host (None:
        the login folder); its output."""
        self._check_key()
        text = "set -e\n" + (f"cd {shlex.quote(cwd)}\n" if cwd else "") + script
        argv = self.argv("sh -c " + shlex.quote(text))
        try:
            done = subprocess.run(
                argv,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                env=self._environ(),
                timeout=OPERATION_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise DeployFailed(f"{self.where} did not answer in {OPERATION_TIMEOUT:g} s") from None
        except OSError as exc:
            raise DeployFailed(f"cannot run ssh: {exc.strerror or exc}") from None
        errors = done.stderr.decode("utf-8", "replace")
        if done.returncode != 0:
            why = self.failure(errors) if done.returncode == 255 else None
            last = errors.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            raise DeployFailed(why or f"on {self.where}: {last[0]}")
        return done.stdout.decode("utf-8", "replace")

    def current_release(self) -> str | None:
        out = self._op(self.root, "if [ -L current ]; then readlink current; fi\n")
        return posixpath.basename(out.strip()) or None

    def releases(self) -> list[str]:
        out = self._op(
            self.root, 'for d in releases/*/; do [ -d "$d" ] && basename "$d"; done; true\n'
        )
        return [line for line in out.splitlines() if line]

    def has_release(self, name: str) -> bool:
        q = shlex.quote
        out = self._op(self.root, f"if [ -d releases/{q(name)} ]; then echo yes; fi\n")
        return out.strip() == "yes"

    def unpack(self, artifact: Path, into: str) -> None:
        """The tar streamed on ssh's stdin into `tar -x` in a .partial folder, renamed
        when whole."""
        q = shlex.quote
        partial, into = q(into + ".partial"), q(into)
        script = (
            f"rm -rf -- {partial}\nmkdir -p -- {partial}\ntar -x -C {partial} -f -\n"
            f"if [ -e {into} ]; then rm -rf -- {partial}; else mv -- {partial} {into}; fi\n"
        )
        with open(artifact, "rb") as tar:
            self._op(None, script, stdin=tar)

    def link_shared(self, release: str, shared: Sequence[str]) -> None:
        q = shlex.quote
        lines = ["top=$(pwd -P)\n"]
        for name in shared:
            inside = posixpath.join("shared", name.rstrip("/"))
            target, parent = q(inside), q(posixpath.dirname(inside))
            source = q(posixpath.join(release, name.rstrip("/")))
            link = posixpath.join(release, name.rstrip("/"))
            seed = f"mkdir -p -- {target}" if name.endswith("/") else f": > {target}"
            # the first deploy seeds shared/ from the release
            lines.append(
                f"if [ ! -e {target} ]; then\n"
                f"  mkdir -p -- {parent}\n"
                f"  if [ -e {source} ]; then mv -- {source} {target}; else {seed}; fi\n"
                "fi\n"
                f"rm -rf -- {q(link)}\n"
                f"mkdir -p -- {q(posixpath.dirname(link))}\n"
                f'ln -s -- "$top"/{target} {q(link)}\n'
            )
        self._op(self.root, "".join(lines))

    def switch(self, release: str) -> None:
        q = shlex.quote
        self._op(
            self.root,
            f"ln -sfn -- {q(posixpath.join('releases', release))} .current.tmp\n"
            "mv -T -- .current.tmp current\n",
        )

    def remove_releases(self, names: Sequence[str]) -> None:
        if names:
            paths = " ".join(shlex.quote(posixpath.join("releases", n)) for n in names)
            self._op(self.root, f"rm -rf -- {paths}\n")

    def local_dir(self) -> Path | None:
        return None

    def close(self) -> None:
        """Let the host's shared connection end: it takes no new sessions and exits when
        the open ones (another environment's deploy to the same host) are done."""
        argv = self.options()
        if "ControlMaster=auto" in argv:
            argv += ["-O", "stop", "--", self.hostname]
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(argv, capture_output=True, env=self._environ(), timeout=10)

    def run(
        self,
        script: str,
        cwd: str,
        variables: dict[str, str],
        timeout: float,
        on_line: Callable[[str], None],
    ) -> runner.Outcome:
        """`script` in `cwd` on the host, its output to `on_line` as it comes; the script
        and the variables go on ssh's stdin."""
        self._check_key()
        last: list[str] = []

        def seen(line: str) -> None:
            last.append(line)
            del last[:-5]
            on_line(line)

        text = remote_script(script, cwd, variables).encode()
        outcome = runner.run(
            self.argv("sh -s"), Path("/"), self._environ(), timeout, seen, lambda: None, stdin=text
        )
        if outcome.exit_code == 255 and (why := self.failure("\n".join(last))):
            raise DeployFailed(why)
        return outcome


def _control_dir() -> Path | None:
    """A folder of this user's alone for ssh's shared connections (whoever can reach
    the socket can use the connection), or None: no sharing."""
    folder = Path(tempfile.gettempdir()) / f"steep-ssh-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return folder


def _option_path(path: Path) -> str:
    """A path as the value of an `ssh -o` option (ssh splits the value on spaces)."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text
