"""The one way a config rejects a value: an NmtError naming the key and saying what to do."""

from nmt.errors import NmtError


def require(condition: bool, key: str, what: str) -> None:
    if not condition:
        raise NmtError(f"{key}: {what}")
