"""Episode recording: a rosbag2 directory with MCAP storage, written by `rosbags` (no ROS needed).

The recorder node hands over CDR bytes as received; this module owns the bag: where it goes
(a fresh directory, never an old recording), the message definitions of our own llara_msgs types
(from their .msg files, so readers without ROS deserialize them) and a clean close.
"""
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
import threading

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from llara_policy.errors import ConfigError

# rosbag2 metadata version 9 (Jazzy and later); Humble's ros2 bag reads version <= 5 only,
# rosbags reads all of them.
BAG_VERSION = 9
DEFAULT_ROOT = 'recordings'


@dataclass(frozen=True)
class RecorderConfig:
    """Configuration of recorder_node.

    Args:
        output_dir: Directory of the new bag; it must not exist or be empty. Empty means
            recordings/<local time YYYYmmdd-HHMMSS> under the working directory.
    """

    output_dir: str = ''


def resolve_output_dir(output_dir: str, now: datetime | None = None) -> Path:
    """Return the bag directory for `output_dir`; raise ConfigError for a used one.

    An existing empty directory (made by a launcher or a test) is removed, because the
    rosbags Writer creates the directory itself and refuses an existing path.
    """
    path = Path(output_dir) if output_dir else (
        Path(DEFAULT_ROOT) / (now or datetime.now()).strftime('%Y%m%d-%H%M%S'))
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f'output_dir {str(path)!r} is a file, not a directory')
        if any(path.iterdir()):
            raise ConfigError(f'output_dir {str(path)!r} exists and is not empty; recordings '
                              'are never overwritten or appended to (choose a new output_dir)')
        path.rmdir()
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def make_typestore(msg_dirs: dict[str, Path]) -> Typestore:
    """Return the ROS 2 standard types plus every .msg of `msg_dirs` (package -> msg dir)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for package, msg_dir in msg_dirs.items():
        files = sorted(Path(msg_dir).glob('*.msg'))
        if not files:
            raise ConfigError(f'no .msg files of {package} in {msg_dir}')
        for path in files:
            types.update(get_types_from_msg(path.read_text(), f'{package}/msg/{path.stem}'))
    typestore.register(types)
    return typestore


class BagRecorder:
    """Writes serialized (CDR) messages of declared topics into one MCAP rosbag2 directory.

    Thread-safe: callbacks of several threads may call `write`. After `close` (idempotent)
    further writes are dropped, so a message racing the shutdown cannot corrupt the bag.
    """

    def __init__(self, path: Path, typestore: Typestore):
        self.path = path
        self.typestore = typestore
        self.counts: dict[str, int] = {}
        self._connections = {}
        self._lock = threading.Lock()
        self._writer = Writer(path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare `topic` of `msgtype` ('sensor_msgs/msg/Image'); its definition is stored."""
        with self._lock:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self.typestore)
            self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes) -> bool:
        """Append one CDR message of a declared topic; False when the bag is already closed."""
        with self._lock:
            if self._writer is None:
                return False
            self._writer.write(self._connections[topic], timestamp_ns, data)
            self.counts[topic] += 1
            return True

    def close(self) -> None:
        """Finish the bag (MCAP summary and metadata.yaml); later calls do nothing."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    @property
    def closed(self) -> bool:
        """True once the bag is finished."""
        return self._writer is None
