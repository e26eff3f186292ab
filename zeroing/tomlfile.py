"""Reading the project's TOML files (configs, cost profiles): one error naming the file and the
reason for every way a file can be wrong, never a traceback."""
import os
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def read_toml(path, error, what, missing=None, with_text=False):
    """The parsed TOML at ``path``; ``error`` (an exception class) for a missing file
    (``missing``, by default "no such <what>"), a folder, bad TOML, non-UTF-8 bytes or an
    unreadable file. ``what`` names the kind of file: "config", "cost profile". With
    ``with_text``: (that, the file's text), for messages that name a key's line."""
    if not path:
        raise error(f"an empty path: name a {what} file")
    if not os.path.exists(path):
        raise error(f"{path}: {missing or f'no such {what}'}")
    if os.path.isdir(path):
        raise error(f"{path} is a folder, not a {what} file")
    if not os.path.isfile(path):
        raise error(f"{path} is not a regular file (a device, pipe or socket): "
                    f"save the {what} to a file")
    try:
        with open(path, "rb") as f:
            data = f.read()
        # A byte-order mark (some editors write one) is no TOML statement: not part of the text.
        text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        raw = tomllib.loads(text)
        return (raw, text) if with_text else raw
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}: "
                    f"{e.object[e.start:e.start + 1]!r}); a {what} is a TOML text file") from None
    except ValueError as e:  # an integer of more digits than Python converts (4300)
        line = _long_number_line(text)
        raise error(f"{path}:{line}: a number of more than {LONG_NUMBER} digits "
                    f"({str(e).split(':')[0].lower()})" if line else
                    f"{path}: not readable as TOML ({e})") from None
    except RecursionError:
        raise error(f"{path}: nested too deeply to read") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None


#: Digits of the longest integer Python converts from text by default.
LONG_NUMBER = 4300


def _long_number_line(text):
    """The first line holding a run of more than LONG_NUMBER digits, or None."""
    for i, line in enumerate(text.splitlines(), 1):
        if re.search(r"\d{%d}" % (LONG_NUMBER + 1), line.replace("_", "")):
            return i
    return None


def key_line(text, key):
    """The line (1-based) of a key path (``seeds``, ``workload[1].rounds``,
    ``policies.a.hint``, ``offload.gpu.launch_ns``, ``clear.normal[3]``) in a TOML text, or
    None where it cannot be told."""
    lines = text.splitlines()

    def find(name, start):
        pat = re.compile(r"""^\s*(?:"{0}"|'{0}'|{0})\s*=""".format(re.escape(name)))
        for i in range(start, len(lines)):
            if i > start and lines[i].lstrip().startswith("["):
                return None
            if pat.match(lines[i]):
                return i + 1
        return None

    def table(header, nth=0):
        seen = -1
        for i, line in enumerate(lines):
            if line.strip().replace(" ", "") == header:
                seen += 1
                if seen == nth:
                    return i
        return None

    m = re.fullmatch(r"workload\[(\d+)\](?:\.(\w+))?", key)
    if m:
        at = table("[[workload]]", int(m.group(1)))
        if at is None:
            return None
        return find(m.group(2), at + 1) if m.group(2) else at + 1
    if key.startswith("policies."):
        at = table("[policies]")
        label = key[len("policies."):].split(".")[0]
        return None if at is None else find(label, at + 1)
    parts = key.split("[")[0].split(".")
    if len(parts) == 1:
        return find(parts[0], 0)
    at = table("[" + ".".join(parts[:-1]) + "]")  # a key of a table: [fault] order0_ns = ...
    return None if at is None else find(parts[-1], at + 1)
