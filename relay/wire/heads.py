"""Where an HTTP request's head ends (its empty line), in bytes that arrive in pieces. Pure."""

from __future__ import annotations

from typing import Final

END: Final = b"\r\n\r\n"


class HeadEnd:
    """Looks for the end of one request's head across the chunks a connection receives."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""
        """The last bytes seen, in case the empty line is split across two chunks."""

    def find(self, data: bytes) -> int:
        """How many bytes of ``data`` the head takes up to its end (its empty line included);
        -1 while it has not ended in what came so far."""
        seen = self._tail + data
        end = seen.find(END)
        if end == -1:
            self._tail = seen[-(len(END) - 1) :]
            return -1
        return end + len(END) - len(self._tail)
