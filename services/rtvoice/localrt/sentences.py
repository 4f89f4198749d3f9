"""Cut streamed answer text into sentences, so speech can start before the whole answer is written.

A sentence ends at ``.``, ``!`` or ``?`` followed by white space, or at a line break; a run longer
than :data:`MAX_CHARS` without one is cut at its last space. Decimal numbers (``3.5``) and text still
being written (``"Paris."`` with nothing after it yet) are not cut. The very first piece may also end
at a clause (``,`` ``;`` ``:`` then a space) once it has :data:`FIRST_CLAUSE_CHARS` characters, so the
first audio of an answer waits for a few words rather than a whole sentence.
"""

from __future__ import annotations

import re

MAX_CHARS = 160
FIRST_CLAUSE_CHARS = 24
_END = re.compile(r"[.!?]+[\"')\]]*\s+|\n+")
_CLAUSE = re.compile(r"[,;:]\s+")


class SentenceSplitter:
    """Feed text pieces with :meth:`feed` (returns the sentences they complete); :meth:`flush` returns
    what is left at the end. Sentences keep their trailing space, so joining them gives the input."""

    def __init__(self, max_chars: int = MAX_CHARS, first_clause_chars: int = FIRST_CLAUSE_CHARS) -> None:
        self._buffer = ""
        self.max_chars = max_chars
        self.first_clause_chars = first_clause_chars
        self._first = True

    def feed(self, text: str) -> list[str]:
        self._buffer += text
        out: list[str] = []
        while True:
            match = _END.search(self._buffer)
            clause = _CLAUSE.search(self._buffer, self.first_clause_chars) if self._first else None
            if clause is not None and (match is None or clause.end() < match.end()):
                cut = clause.end()
            elif match is not None:
                cut = match.end()
            elif len(self._buffer) > self.max_chars and " " in self._buffer[1:]:
                cut = self._buffer.rindex(" ") + 1
            else:
                break
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if sentence.strip():
                out.append(sentence)
                self._first = False
            elif out:
                out[-1] += sentence
        return out

    def flush(self) -> str:
        """The unfinished rest ("" when nothing is left), and the splitter is empty again."""
        rest, self._buffer = self._buffer, ""
        return rest
