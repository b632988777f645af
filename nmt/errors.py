"""The one exception type for mistakes a user can make (bad input, bad config, missing files)."""


class NmtError(Exception):
    """A user-facing error: its message names the file, line or key and says what to do."""
