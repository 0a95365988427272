"""Every error mover raises, in one hierarchy under :class:`MoverError`.

Providers translate vendor exceptions (botocore, swiftclient, OSError) into these at their
boundary, so that the executors and the CLI decide on retry and exit code from attributes,
never by parsing messages. Messages name the store, the key and the plugin, say how to fix the
problem, and never contain a credential.
"""

from __future__ import annotations

#: Exit code for a failed job or an input that names something that does not work.
EXIT_FAILED = 1
#: Exit code for a usage error: a malformed URL, an unknown scheme or strategy, bad options.
EXIT_USAGE = 2
#: Exit code for a job id that no job store knows (``mover status/resume/cancel JOB``).
EXIT_NOT_FOUND = 4


class MoverError(Exception):
    """Base of every mover error.

    Attributes:
        retryable: True when the same call may succeed later (time-out, connection reset, 5xx,
            throttling); the retry policy in :mod:`mover.retry` reads it.
        exit_code: what the CLI exits with when this error ends a command.
    """

    retryable: bool = False
    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


# --- configuration and plugins -------------------------------------------------------------


class ConfigError(MoverError):
    """Raised when configuration or the plugin set cannot serve the request."""


class UnknownStore(ConfigError):
    """Raised when a ``store:NAME/...`` location names a store that is not configured."""

    exit_code = EXIT_USAGE


class UnknownPlugin(ConfigError):
    """Raised when no plugin of a group has the requested name (e.g. an unknown URL scheme)."""

    exit_code = EXIT_USAGE


class PluginLoadError(ConfigError):
    """Raised when a registered plugin cannot be imported or breaks its contract."""


# --- input validation (nothing has moved yet) ----------------------------------------------


class ValidationError(MoverError):
    """Raised before any byte moves, when the request itself cannot be carried out."""


class BadLocation(ValidationError):
    """Raised for a malformed URL or path."""

    exit_code = EXIT_USAGE


class KeyEscapesRoot(ValidationError):
    """Raised when a key resolves outside its store's root (``..``, a symlink out)."""


class ObjectNotFound(ValidationError, FileNotFoundError):
    """Raised when the source object, bucket or container does not exist."""


class SameObject(ValidationError):
    """Raised when source and destination are the same object."""


class NotEnoughSpace(ValidationError):
    """Raised when the destination cannot hold the object (free space or part limits)."""


class NotWritable(ValidationError):
    """Raised when the destination (folder, bucket, container) cannot be written."""


class AccessDenied(ValidationError):
    """Raised when a store refuses the credentials or the operation (401/403)."""


class UsageError(ValidationError):
    """Raised for options that contradict each other or the stores' limits."""

    exit_code = EXIT_USAGE


# --- during a transfer ---------------------------------------------------------------------


class TransferError(MoverError):
    """Raised while bytes move."""


class ChunkFailed(TransferError):
    """Raised when one chunk could not be read or written."""


class VerificationFailed(TransferError):
    """Raised when what a store confirms differs from what was read: corruption in flight."""


class BrokerError(TransferError):
    """Raised when the fleet's broker (Redis) refuses or drops a publish or a job-record
    write; the message says what became of the job and how to go on (``mover resume``)."""

    retryable = True


class SourceChanged(TransferError):
    """Raised when the source object is no longer the version the job was prepared from (its
    ETag, version, size or modification time changed while it was read): the copy would mix two
    versions, so the object is aborted. Not retryable: the job must be run again."""


class Cancelled(TransferError):
    """Raised inside a chunk when its job was cancelled; the job is aborted and cleaned."""


class CannotHandle(MoverError):
    """Raised by a strategy that finds, late, that it cannot move this pair (rclone's
    ErrorCantCopy): the dispatcher falls back to the next strategy."""


class NoStrategy(ConfigError):
    """Raised when no registered motion strategy can move a source to a destination."""


class JobNotFound(MoverError):
    """Raised when a job id is unknown to the job store."""

    exit_code = EXIT_NOT_FOUND


class JobStateError(MoverError):
    """Raised for an operation the job's state does not allow (resume a finished job)."""
