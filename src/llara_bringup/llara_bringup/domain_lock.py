"""One embedded graph per DDS domain on this machine.

Two graphs in one domain see each other's topics and servers: a launcher's `run_task` goal
would reach both task_nodes, the policies would answer each other's queries and both executors
would move. Discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST), so a
lock file per domain (and user) in the temp directory, held with flock for the launcher's life
and released by the kernel however it ends, is enough to refuse a second launcher. It does not
see nodes started by other means (`ros2 run`, a full `ros2 launch`).
"""
import fcntl
import os
from pathlib import Path
import tempfile
from typing import IO

DOMAIN_ENV = 'ROS_DOMAIN_ID'
DEFAULT_DOMAIN = 0  # ROS 2's domain when ROS_DOMAIN_ID is unset or empty


class DomainError(Exception):
    """The DDS domain cannot be used: another launcher holds it, or ROS_DOMAIN_ID is bad."""


def current_domain() -> int:
    """Return the DDS domain of this process (ROS_DOMAIN_ID; DEFAULT_DOMAIN if unset or empty)."""
    text = os.environ.get(DOMAIN_ENV, '').strip()
    if not text:
        return DEFAULT_DOMAIN
    try:
        return int(text)
    except ValueError:
        raise DomainError(f'{DOMAIN_ENV}={text!r} is not a domain number') from None


def lock_path(domain: int) -> Path:
    """Return the lock file of `domain` for this user."""
    return Path(tempfile.gettempdir()) / f'llara_launch_{os.getuid()}_domain_{domain}.lock'


def claim_domain(domain: int) -> IO[str]:
    """Hold `domain` until the returned file is closed or this process ends.

    DomainError, naming the holder's pid, when another process holds it.
    """
    path = lock_path(domain)
    handle = open(path, 'a+')  # noqa: SIM115 - held open past this function: it is the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or 'unknown'
        handle.close()
        raise DomainError(
            f'another llara_bringup.launch (pid {holder}) runs a graph in DDS domain {domain} '
            f'on this machine; stop it, or start this one with another {DOMAIN_ENV} '
            f'(e.g. {DOMAIN_ENV}={domain + 1})') from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle
