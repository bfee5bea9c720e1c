"""Errors a user can fix. The CLI prints them as one line and exits with code 2.

Everything raised on purpose for bad input (a wrong flag, a corrupt file, a run folder with
missing pieces) is a ConvtrainError, so callers in Python can catch one family and the CLI
never shows a deep traceback for a mistake that is the user's to mend.
"""


class ConvtrainError(Exception):
    """A problem with the user's input, stated with the file or value and the fix."""


class ConfigError(ConvtrainError, ValueError):
    """An invalid option value or configuration file."""


class DataError(ConvtrainError):
    """A dataset that is missing, corrupt, or not in the expected format."""


class DownloadError(DataError):
    """A dataset that could not be downloaded or failed its checksum."""


class CheckpointError(ConvtrainError):
    """A run folder or checkpoint that is missing, mismatched, or unsafe to load."""


class DiskError(ConvtrainError):
    """A file that could not be written: its disk is full or read-only, or its folder is gone."""


class ImageError(ConvtrainError):
    """An image file that cannot be read or converted."""


def reason(error: BaseException) -> str:
    """A library's exception as one line ('Type: message'), for the end of a ConvtrainError message.

    Parsers of outside bytes (pickle, zipfile, PIL, gzip) put newlines in some of their messages.
    """
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def first_line(error: BaseException) -> str:
    """A library's exception by its first line (torch puts the headline there and details below), or
    its type when it has no message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class DataWarning(UserWarning):
    """A dataset problem convtrain worked around; the same text is in ImageData.notes."""
