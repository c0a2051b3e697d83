"""Just enough Groovy lexing to check a Jenkinsfile and a shared library without a Groovy toolchain.

`GroovySource` blanks out comments and string contents (keeping every offset), so that braces, parentheses and
names can be matched on the masked text, while the string literals stay available with their quote style.
Slashy strings are not lexed: the sources checked here only use them for regexes without quotes or braces.
"""

import re
from dataclasses import dataclass
from pathlib import Path

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}


@dataclass(frozen=True)
class StringLiteral:
    start: int  # offset of the opening quote
    end: int  # offset just past the closing quote
    quote: str  # ', ", ''' or """
    value: str  # the raw text between the quotes

    @property
    def interpolated(self) -> bool:
        """A double-quoted Groovy string is a GString: `$x` / `${x}` in it are evaluated by Groovy."""
        return self.quote in ('"', '"""') and "$" in self.value


class GroovySource:
    def __init__(self, text: str, name: str = "<groovy>"):
        self.text = text
        self.name = name
        self.strings: list[StringLiteral] = []
        self.masked = self._mask(text)

    @classmethod
    def read(cls, path: Path) -> "GroovySource":
        return cls(path.read_text(encoding="utf-8"), str(path))

    def _mask(self, text: str) -> str:
        out = list(text)
        i, n = 0, len(text)
        while i < n:
            if text.startswith("//", i):
                end = text.find("\n", i)
                end = n if end < 0 else end
                out[i:end] = " " * (end - i)
                i = end
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                end = n if end < 0 else end + 2
                out[i:end] = [c if c == "\n" else " " for c in text[i:end]]
                i = end
            elif text.startswith("'''", i) or text.startswith('"""', i):
                quote = text[i : i + 3]
                j = i + 3
                while j < n and not text.startswith(quote, j):
                    j += 2 if text[j] == "\\" else 1
                if j >= n:
                    raise ValueError(f"{self.name}: unterminated {quote} string at offset {i}")
                self._string(out, text, i, j + 3, quote)
                i = j + 3
            elif text[i] in "'\"":
                quote = text[i]
                j = i + 1
                while j < n and text[j] != quote:
                    if text[j] == "\n":
                        raise ValueError(f"{self.name}: unterminated {quote} string at offset {i}")
                    j += 2 if text[j] == "\\" else 1
                self._string(out, text, i, j + 1, quote)
                i = j + 1
            else:
                i += 1
        return "".join(out)

    def _string(self, out: list[str], text: str, start: int, end: int, quote: str) -> None:
        q = len(quote)
        self.strings.append(StringLiteral(start, end, quote, text[start + q : end - q]))
        out[start + q : end - q] = [c if c == "\n" else " " for c in text[start + q : end - q]]

    # ---- structure -------------------------------------------------------------------------------------------

    def matching(self, open_at: int) -> int:
        """Offset of the bracket closing the one at `open_at` (on the masked text)."""
        stack = []
        for i in range(open_at, len(self.masked)):
            c = self.masked[i]
            if c in OPENERS:
                stack.append(c)
            elif c in CLOSERS:
                if not stack or stack.pop() != CLOSERS[c]:
                    raise ValueError(f"{self.name}: unbalanced {c!r} at offset {i}")
                if not stack:
                    return i
        raise ValueError(f"{self.name}: bracket at offset {open_at} is never closed")

    def block(self, name: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
        """The first `name {...}` (or `name(...) {...}`) block in [start, end): offsets inside its braces."""
        end = len(self.masked) if end is None else end
        pattern = re.compile(rf"\b{re.escape(name)}\s*(\([^)]*\))?\s*\{{")
        for m in pattern.finditer(self.masked, start, end):
            open_at = m.end() - 1
            return open_at + 1, self.matching(open_at)
        return None

    def string_at(self, offset: int) -> StringLiteral | None:
        for s in self.strings:
            if s.start == offset:
                return s
        return None

    def strings_in(self, start: int, end: int) -> list[StringLiteral]:
        return [s for s in self.strings if start <= s.start and s.end <= end]

    def top_level_heads(self, start: int, end: int) -> list[tuple[str, int]]:
        """Names that begin a statement at the top level of [start, end): `sh '...'`, `portalStage(...) {`."""
        heads, depth, i = [], 0, start
        word = re.compile(r"[A-Za-z_]\w*")
        expect_statement = True
        while i < end:
            c = self.masked[i]
            if c in OPENERS:
                depth += 1
            elif c in CLOSERS:
                depth -= 1
                expect_statement = depth == 0
            elif c == "\n" or c == ";":
                expect_statement = expect_statement or depth == 0
            elif depth == 0 and expect_statement and not c.isspace():
                m = word.match(self.masked, i)
                if m:
                    heads.append((m.group(), i))
                    i = m.end()
                    expect_statement = False
                    continue
                expect_statement = False
            i += 1
        return heads

    def calls(self, name: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """Every `name(...)` call in [start, end): offsets inside its parentheses."""
        end = len(self.masked) if end is None else end
        found = []
        for m in re.finditer(rf"(?<![\w.]){re.escape(name)}\s*\(", self.masked[:end]):
            if m.start() < start:
                continue
            open_at = m.end() - 1
            found.append((open_at + 1, self.matching(open_at)))
        return found

    def map_keys(self, start: int, end: int) -> list[str]:
        """Keys of the Groovy map literal `[k: v, ...]` whose brackets enclose [start, end)."""
        keys, depth, entry_start = [], 0, start
        for i in range(start, end + 1):
            c = self.masked[i] if i < end else ","
            if c in OPENERS:
                depth += 1
            elif c in CLOSERS:
                depth -= 1
            elif c == "," and depth == 0:
                entry = self.masked[entry_start:i]
                m = re.match(r"\s*([A-Za-z_]\w*)\s*:", entry)
                if m:
                    keys.append(m.group(1))
                elif entry.strip():
                    raise ValueError(f"{self.name}: map entry without a plain key: {entry.strip()[:40]!r}")
                entry_start = i + 1
        return keys

    def named_argument(self, start: int, end: int, name: str) -> StringLiteral | str | None:
        """The value of `name:` among the arguments in [start, end): a string literal, or the raw expression."""
        m = re.search(rf"(?<![\w.]){re.escape(name)}\s*:\s*", self.masked[start:end])
        if not m:
            return None
        at = start + m.end()
        literal = self.string_at(at)
        if literal:
            return literal
        expr = re.match(r"[^,)\]]*", self.masked[at:end]).group()
        return self.text[at : at + len(expr)].strip()
