"""Reading a crontab line as Debian cron does, for the tests of generate-cron."""

from __future__ import annotations


def cron_command(line: str, *, system: bool = False) -> str:
    """What Debian cron hands to `sh -c` for `line` (an independent port of do_command's walk)."""
    rest = line.split(None, 6 if system else 5)[-1]
    out = ""
    escaped = False
    for char in rest:
        if escaped:
            escaped = False
            if char == "%":
                out = out[:-1] + "%"
                continue
        elif char == "\\":
            escaped = True
        elif char == "%":
            break
        out += char
    return out
