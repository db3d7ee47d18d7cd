"""The mapper's unix socket: claimed only when nobody serves it, and never world-writable.

EdgeCore calls the mapper on a unix socket (``DeviceMapperService``). Before serving it, the
mapper claims the path (:func:`claim_socket`):

- a socket some process still accepts connections on is left alone: the mapper refuses to
  start (two mappers polling the same devices would each write them);
- a stale socket (nobody accepts on it: a previous run that was killed) is removed;
- anything else at the path (a file, a folder, a symlink, dangling or not) is refused with
  one line naming it: the mapper removes nothing it did not make;
- missing folders are made with mode 0750, whatever the umask.

Once served, :func:`restrict_socket` gives the socket mode 0660 (owner and group: EdgeCore
runs as root or in the mapper's group), whatever the umask.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

from edgedev._errors import EdgedevError

__all__ = ("SOCKET_MODE", "MapperSocketError", "claim_socket", "restrict_socket")

SOCKET_MODE = 0o660
"""Mode of the mapper's socket: read and write for its owner and group."""

FOLDER_MODE = 0o750
"""Mode of the folders made for the socket."""


class MapperSocketError(EdgedevError):
    """The mapper socket cannot be claimed: in use by another process, or not a socket."""


def claim_socket(path: str | os.PathLike[str]) -> None:
    """Make ``path`` free for the mapper to bind: its folders made, a stale socket removed.

    Raises:
        MapperSocketError: another process serves the socket, or ``path`` is not a socket,
            or a folder cannot be made (the message is one line naming the path).
    """
    target = Path(path)
    _make_folders(target.parent)
    try:
        info = target.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise MapperSocketError(f"mapper socket {target}: {exc.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise MapperSocketError(
            f"mapper socket {target} is a symbolic link; remove it or choose another "
            "--mapper-socket"
        )
    if not stat.S_ISSOCK(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a file"
        raise MapperSocketError(
            f"mapper socket {target} is {kind}, not a socket; remove it or choose another "
            "--mapper-socket"
        )
    if _live(target):
        raise MapperSocketError(
            f"mapper socket {target} is already in use: another mapper serves it (stop it, "
            "or choose another --mapper-socket)"
        )
    try:
        target.unlink()  # stale: left by a run that was killed
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise MapperSocketError(
            f"cannot remove the stale socket {target}: {exc.strerror}"
        ) from None


def restrict_socket(path: str | os.PathLike[str]) -> None:
    """Give the served socket mode 0660, whatever the umask was when it was bound.

    Raises:
        MapperSocketError: the mode cannot be set.
    """
    try:
        os.chmod(path, SOCKET_MODE)
    except OSError as exc:
        raise MapperSocketError(f"cannot set the mode of {path}: {exc.strerror}") from None


def _live(path: Path) -> bool:
    """Whether a process accepts connections on the socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            # refused (nobody listens) or gone: stale; any other failure: assume in use
            return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    return True


def _make_folders(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for made in reversed(missing):
        try:
            made.mkdir()
            os.chmod(made, FOLDER_MODE)  # mkdir's mode is cut by the umask; chmod is not
        except FileExistsError:
            continue
        except OSError as exc:
            raise MapperSocketError(f"cannot make the folder {made}: {exc.strerror}") from None
