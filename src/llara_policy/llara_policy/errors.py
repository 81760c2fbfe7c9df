"""Typed errors raised by the LLaRA core.

The core raises; ROS nodes catch `LlaraError` at the callback boundary, report it
(status message, aborted action result) and keep running. Every error says what
was wrong and where, so a log line is enough to fix the input.
"""


class LlaraError(Exception):
    """Base class of every error the LLaRA stack raises on purpose."""


class ConfigError(LlaraError):
    """A configuration value is missing, has the wrong type or is out of range."""


class ParseError(LlaraError):
    """Model text that does not parse into actions.

    `position` is the character offset in `text` where parsing failed (or -1 when
    the problem is the text as a whole, e.g. no action found).
    """

    def __init__(self, message: str, text: str = '', position: int = -1):
        self.reason = message
        self.text = text
        self.position = position
        if position >= 0:
            line = text.count('\n', 0, position) + 1
            excerpt = text[max(0, position - 20):position + 20].replace('\n', '\\n')
            message = f'{message} (line {line}, offset {position}, near {excerpt!r})'
        super().__init__(message)


class CalibrationError(LlaraError):
    """A calibration file or fit is invalid (names the bad field or input)."""


class ProjectionError(LlaraError):
    """A point cannot be mapped between image and robot frames (e.g. the ray misses the plane)."""


class UnsafeTargetError(LlaraError):
    """A target fails the workspace check; raised before any arm command is sent.

    `limit` names the violated quantity ('x', 'y', 'z', 'reach', 'speed', 'yaw change', ...)
    and `value` is the offending value in the unit the message states.
    """

    def __init__(self, message: str, limit: str, value: float):
        super().__init__(message)
        self.limit = limit
        self.value = value


class ArmError(LlaraError):
    """The arm (real or simulated) returned a non-zero xArm SDK or controller code."""

    def __init__(self, message: str, code: int):
        self.code = code
        super().__init__(f'{message} (code {code})')


class NothingPickedError(ArmError):
    """A suction pick held nothing (SDK code 41) and the recovery after it succeeded.

    Raised by `arms.primitives.pick_and_place` only once the suction is off and the cup has
    retreated above the pick: nothing is carried and the arm is in a known state, so the next
    step may run (LLaRA's and VIMA-Bench's protocol: a pick that holds nothing does nothing).
    A miss whose recovery failed too raises the plain ArmError instead (code 41, with a note).
    """


class ControllerError(ArmError):
    """The controller holds an error (SDK code 1); `error_code` is its code, e.g. 35 boundary."""

    def __init__(self, message: str, error_code: int, code: int = 1):
        self.error_code = error_code
        super().__init__(message, code)


class NotConnectedError(ArmError):
    """The arm is not connected (xArm SDK code -1)."""

    def __init__(self, message: str = 'arm is not connected'):
        super().__init__(message, -1)


class ModelError(LlaraError):
    """A model, processor or checkpoint cannot be loaded or used as configured."""


class SimError(LlaraError):
    """The simulator could not build or run a scene or task."""


class ValueRangeError(LlaraError, ValueError):
    """A domain value (point, angle, size) is outside its documented range."""


class PromptError(LlaraError, ValueError):
    """A prompt or answer text cannot be built from the given inputs (names the bad input)."""
