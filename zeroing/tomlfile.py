"""Reading the project's TOML files (configs, cost profiles): one error naming the file and the
reason for every way a file can be wrong, never a traceback."""
import os

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def read_toml(path, error, what, missing=None):
    """The parsed TOML at ``path``; ``error`` (an exception class) for a missing file
    (``missing``, by default "no such <what>"), a folder, bad TOML, non-UTF-8 bytes or an
    unreadable file. ``what`` names the kind of file: "config", "cost profile"."""
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
        return tomllib.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}: "
                    f"{e.object[e.start:e.start + 1]!r}); a {what} is a TOML text file") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
