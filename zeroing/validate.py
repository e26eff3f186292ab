"""The one validation path for the command line and config files.

Every option of ``zeroing`` and every key of a compare config goes through the same rules
here, before any work starts, so the two give the same messages: ``NAME: VALUE is not
allowed: WHAT IS``, where NAME is ``--option`` on the command line and ``FILE:LINE: key.path``
in a config. Numbers are range-checked; a zone size is checked against the memory the run will
need before anything is allocated. A ``UserError`` is a problem the user can fix; the CLI
prints it as one line and exits 2.
"""
import argparse
import contextlib
import math
import os
import re
import signal
import sys
import tempfile
import threading

from allocator.state import MAX_PFNS
from kernels import BACKENDS as KERNEL_BACKENDS

from .cost import MAX_OFFLOAD_BATCH, OFFLOAD_DEVICES
from .policy import FREE_SIGNALS, HINTS, PFMEMALLOC


class UserError(ValueError):
    """A problem the user can fix: one line naming the option, or the file (and key)."""


class Refused(ValueError):
    """A rule's ``convert`` refusing a value for a reason more precise than ``allowed()``."""

    def __init__(self, why):
        super().__init__(why)
        self.why = why


#: An integer as text: decimal ASCII digits, a sign, spaces around.
_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")


class Int:
    """An integer in lo..hi (text on the command line; a TOML integer, not a float or bool)."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def allowed(self):
        return f"an integer from {self.lo} to {self.hi}"

    def convert(self, value):
        if isinstance(value, str):
            if not _INT_TEXT.fullmatch(value):  # not Python's int(): no "1_0", no other digits
                raise ValueError
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError
        return value


class Float:
    """A finite number in lo..hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def allowed(self):
        return f"a number from {self.lo:g} to {self.hi:g}"

    def convert(self, value):
        if isinstance(value, str):
            if "_" in value or not value.isascii():  # float() takes "1_0" and other digits
                raise ValueError
            value = float(value.strip())
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError
        return float(value)


class Choice:
    def __init__(self, *choices):
        self.choices = choices

    def allowed(self):
        return "one of " + ", ".join(self.choices)

    def convert(self, value):
        if value not in self.choices:
            raise ValueError
        return value


class Many:
    """Values joined by commas, each by ``rule``, none twice (it would be measured twice):
    a list."""

    def __init__(self, rule):
        self.rule = rule

    def allowed(self):
        return f"{self.rule.allowed()}, or several different ones joined by commas"

    def convert(self, value):
        parts = value.split(",") if isinstance(value, str) else None
        if not parts:
            raise ValueError
        try:
            values = [check("", "", part, self.rule) for part in parts]
        except UserError:
            raise ValueError from None
        if len(set(values)) < len(values):
            raise ValueError
        return values


class Names(Many):
    """Names from a fixed set, joined by commas."""

    def __init__(self, *choices):
        super().__init__(Choice(*choices))


class Bool:
    """true/false in a config; on/off, true/false, yes/no, 1/0 as text."""

    WORDS = {"on": True, "true": True, "yes": True, "1": True,
             "off": False, "false": False, "no": False, "0": False}

    def allowed(self):
        return "on or off (true or false)"

    def convert(self, value):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in self.WORDS:
            return self.WORDS[value.strip().lower()]
        raise ValueError


def printable(text):
    """``text`` as a message may show it: control characters (a terminal escape among them)
    written as escapes rather than sent to the terminal (a newline in a path among them:
    every error stays one line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class Text:
    """A non-empty string of printable characters (no control character, C0 or C1, nor a line
    or paragraph separator: it is printed in tables and file names)."""

    def allowed(self):
        return "a non-empty text of printable characters"

    def convert(self, value):
        if not isinstance(value, str) or not value.strip() or not value.isprintable():
            raise ValueError
        return value


class Label(Text):
    """A Text without spaces at either end: tables print labels trimmed, so ``"b "`` and
    ``"b"`` would be two columns that read alike."""

    def allowed(self):
        return "a non-empty text of printable characters, without spaces at either end"

    def convert(self, value):
        value = super().convert(value)
        if value != value.strip():
            raise ValueError
        return value


def not_a_file(path):
    """Why ``path`` is no regular file: no such file, a folder, or a device, pipe or socket."""
    if not path:
        return "an empty path"
    if not os.path.exists(path):
        return "no such file"
    if os.path.isdir(path):
        return "a folder, not a file"
    return "not a regular file (a device, pipe or socket)"


class FileName(Text):
    """A Text that names one file or folder: no path separators, not . or .."""

    def allowed(self):
        return ("a non-empty name of at most 255 bytes of printable characters without '/' or "
                "'\\', not . or ..")

    def convert(self, value):
        value = super().convert(value)
        if "/" in value or "\\" in value or value.strip() in (".", "..") \
                or len(value.encode()) > 255:
            raise ValueError
        return value


class InitialState:
    """pristine, aged, or ``FILE[,zone=NAME][,node=N]``: a /proc/buddyinfo or /proc/pagetypeinfo
    snapshot that exists (initial_state.py reads it later and names its file and line if it is
    bad)."""

    def allowed(self):
        return ("pristine, aged or an existing /proc/buddyinfo or /proc/pagetypeinfo file "
                "(FILE,zone=NAME for a zone other than Normal, ,node=N for a node other than "
                "the lowest)")

    def convert(self, value):
        from .initial_state import parse_spec
        if not isinstance(value, str):
            raise ValueError
        path = parse_spec(value)[0]
        if value in ("pristine", "aged") or os.path.isfile(path):
            return value
        why = not_a_file(path)
        if re.search(r",(zone|node)=", value):
            raise Refused(f"{why} {path!r} (after FILE: ,zone=NAME and ,node=N, N from 0 to "
                          "9999, each once)")
        raise Refused(f"{why}; {self.allowed()}")


class OtherZones:
    """The managed pages of the node's other lowmem zones: ``none``, or integers joined by
    commas on the command line; a TOML array of integers (empty: none). At most 3 (DMA,
    DMA32 and Normal beside the modelled one)."""

    MOST = 3

    def allowed(self):
        return (f"none, or up to {self.MOST} zone sizes in pages (integers from 0 to "
                f"{MAX_PFNS}) joined by commas")

    def convert(self, value):
        if isinstance(value, str):
            value = [] if value.strip() == "none" else value.split(",")
        if not isinstance(value, (list, tuple)) or len(value) > self.MOST:
            raise ValueError
        sizes = tuple(Int(0, MAX_PFNS).convert(v) for v in value)
        if any(not 0 <= m <= MAX_PFNS for m in sizes):
            raise ValueError
        return sizes


BIG = 10**9
MODES = ("metadata", "content")
BACKENDS = ("auto",) + KERNEL_BACKENDS
#: --pcp-high: the kernel's auto-tuning (6.7+), or high fixed at the low watermark / CPUs.
PCP_HIGH_MODES = ("auto", "fixed")
#: The most events a run may be given (--events), or a workload's parameters may make.
MAX_EVENTS = 2**31 - 1
#: --pipeline: the allocator's half of the loop on a second host thread (zeroing/pipeline.py).
PIPELINE_MODES = ("off", "on")

#: Rules by name (the config key; the option is ``--`` + name with dashes).
RULES = {
    # zone, run and engine
    "pages": Int(1024, MAX_PFNS),
    "events": Int(1, MAX_EVENTS),
    "seed": Int(0, 2**63 - 1),
    "mode": Choice(*MODES),
    "backend": Choice(*BACKENDS),
    "workers": Int(1, 256),
    "pcp": Bool(),
    "pcp_high": Choice(*PCP_HIGH_MODES),
    "pipeline": Choice(*PIPELINE_MODES),
    "initial_state": InitialState(),
    "other_zones": OtherZones(),
    "throughput": Bool(),
    "name": FileName(),  # the results folder's name
    "label": Label(),
    "out": Text(),
    "cost_profile": Text(),
    # workload parameters (zeroing/workloads); upper bounds keep the event array in memory
    "thp": Bool(),
    "size_mb": Int(1, MAX_PFNS // 256),
    "rounds": Int(1, 10_000),
    "idle_s": Float(0, 1e6),
    "noise": Float(0, 1),
    "touch": Float(0.001, 1),  # of each faulted block, the program writes this share
    "jobs": Int(1, 1_000_000),
    "files_per_job": Int(1, 1_000_000),
    "passes": Int(1, 10_000),
    "file_fraction": Float(0, 1),
    "cycles": Int(1, 10_000),
    "balloon_fraction": Float(0, 1),
    # policy options (zeroing.policy.Policy)
    "init_on_free": Bool(), "init_on_alloc": Bool(), "track": Bool(), "balloon": Bool(),
    "reporting": Bool(), "aliasing_cache": Bool(), "offload": Bool(), "zeroed_aware": Bool(),
    "hint": Choice(*HINTS),
    "free_signal": Choice(*FREE_SIGNALS),
    "pfmemalloc": Choice(*PFMEMALLOC),
    "reporting_order": Int(0, 10),
    "reporting_delay_ns": Int(1, 10**15),
    "offload_batch_pages": Int(0, MAX_OFFLOAD_BATCH),  # 0: the offload device profile's batch
    "offload_device": Choice(*OFFLOAD_DEVICES),
    "offload_watermark": Float(0, 1),
    "offload_period_ns": Int(1, 10**15),
    # command-line spellings of the offload options
    "offload_batch": Int(1, MAX_OFFLOAD_BATCH),
    "offload_period_ms": Float(1e-6, 1e9),
}


def option(name):
    """The command-line spelling of a rule name."""
    return "--" + name.replace("_", "-")


def env_int(name, default, lo, hi):
    """An integer environment variable in lo..hi, else ``default`` when unset; UserError
    naming the variable and the range."""
    text = os.environ.get(name)
    if text is None:
        return default
    return check(f"{name} (environment)", "", text, Int(lo, hi))


def check(where, name, value, rule=None):
    """``value`` converted by the rule for ``name``, or UserError naming ``where``."""
    rule = rule or RULES[name]
    try:
        converted = rule.convert(value)
    except (TypeError, ValueError, OverflowError) as e:
        why = e.why if isinstance(e, Refused) else rule.allowed()
        raise UserError(f"{where}: {value!r} is not allowed: {why}") from None
    lo, hi = getattr(rule, "lo", None), getattr(rule, "hi", None)
    if lo is not None and not lo <= converted <= hi:
        raise UserError(f"{where}: {value!r} is not allowed: {rule.allowed()}")
    return converted


def arg(rule):
    """An argparse ``type=`` that converts by ``rule`` (e.g. ``arg(Int(1, 100))``): argparse
    then prints one line naming the option, and exits 2."""
    def convert(text):
        try:
            return check("", "", text, rule)
        except UserError:
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed: {rule.allowed()}") \
                from None
    convert.__name__ = "value"  # argparse names the type in some messages
    return convert


def _path_arg(check_path):
    def convert(text):
        try:
            return check_path("", text)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(": ")) from None
    convert.__name__ = "path"
    return convert


def output_file(text):
    """argparse ``type=`` for a file a script writes: checked up front (check_output_file)."""
    return _path_arg(check_output_file)(text)


def output_folder(text):
    """argparse ``type=`` for a folder a script writes into (check_output_folder)."""
    return _path_arg(check_output_folder)(text)


class RefuseRepeats(argparse.ArgumentParser):
    """argparse, refusing an option given twice (argparse keeps the last one without a word);
    options that gather (``append``, counts) and ``--help`` may repeat. Records the options
    given (``was_given``), so that one that would change nothing is refused at any value."""

    GATHER = ("_AppendAction", "_AppendConstAction", "_CountAction", "_HelpAction")
    #: What reads as a negative number (exponents, hex, underscores, -inf, -nan, a list that
    #: starts with one) is a value, for the option's own rule to refuse: argparse (3.11)
    #: took ``-1e-3`` for an option and said "expected one argument" of the one before it.
    NEGATIVE_NUMBER = re.compile(r"^-([0-9]|\.[0-9]|inf|nan)", re.I)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = self.NEGATIVE_NUMBER

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        options = self._option_string_actions  # argparse's own table of this parser's options
        seen = set()
        for token in args:
            if token == "--":
                break
            name = token.split("=", 1)[0]
            if not name.startswith("--"):
                continue
            found = [name] if name in options else [o for o in options if o.startswith(name)]
            if len(found) != 1:
                continue  # unknown or ambiguous: argparse says so
            action = options[found[0]]
            if action.dest in seen and type(action).__name__ not in self.GATHER:
                self.error(f"{found[0]}: given twice (only one value can count)")
            seen.add(action.dest)
        #: The options given on the command line (their dests), whatever their values.
        self.given = seen
        return super().parse_known_args(args, namespace)

    def was_given(self, dest):
        """Whether option ``dest`` was on the command line (even at its default value)."""
        return dest in getattr(self, "given", ())


def first_sentence(doc):
    """A docstring's first sentence on one line (a script's --help description: its first
    line alone stopped mid-sentence where the sentence wraps)."""
    text = " ".join(doc.split("\n\n")[0].split())
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)\.(\s|$)", text)
    return text[:m.start() + 1] if m else text


class OneLineParser(RefuseRepeats):
    """argparse for the experiment scripts: a bad option is one line (no usage block), exit 2.
    The description is the first sentence of the one given (a script passes its docstring)."""

    def __init__(self, *args, description=None, **kwargs):
        super().__init__(*args, description=description and first_sentence(description),
                         **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {printable(message)} (see --help)\n")

    def quick(self, args, **tiny):
        """``--quick``: set the tiny sizes of the tests; an option given beside it would be
        overridden without a word, so it is refused."""
        for name in tiny:
            if self.was_given(name):
                self.error(f"--{name.replace('_', '-')}: has no effect with --quick (which "
                           "sets it)")
        for name, value in tiny.items():
            setattr(args, name, value)


#: How long a Ctrl-C that came inside llvmlite waits before it is delivered again.
LATER_S = 0.05


@contextlib.contextmanager
def remembered_interrupts():
    """Yields a list that a Ctrl-C appends to, as well as raising KeyboardInterrupt: one that
    lands in a library's callback (llvmlite's, while numba compiles) is lost there and
    surfaces as some other error, or none, so the caller checks the list too; one that lands
    in llvmlite's Python is delivered again ``LATER_S`` later instead. Installed in
    the main thread over Python's own handler only; the handler before is put back."""
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(True)
        if frame is not None and f"{os.sep}llvmlite{os.sep}" in frame.f_code.co_filename:
            # Maybe llvmlite's ctypes callback, which would print the exception and swallow
            # it (the run went on to its end): the signal comes again in a moment.
            timer = threading.Timer(LATER_S, os.kill, (os.getpid(), signal.SIGINT))
            timer.daemon = True
            timer.start()
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint) if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler) else None
    try:
        yield interrupted
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def script_main(main):
    """Run an experiment script's ``main()``: its status (0 unless it returns an int), or for
    a UserError one line on stderr and 2; a Ctrl-C is one line and 130."""
    prog = os.path.basename(sys.argv[0])
    with remembered_interrupts() as interrupted:
        try:
            rc = main()
            if interrupted:
                raise KeyboardInterrupt
            return rc if isinstance(rc, int) else 0
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except UserError as e:
            print(f"{prog}: error: {printable(e)}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as zeroing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # does
            return 141
        except Exception:
            if interrupted:
                print(f"{prog}: interrupted", file=sys.stderr)
                return 130
            raise


def check_policy_names(where, names):
    """A policy spec: preset names joined by commas (or a list), at least one, all known."""
    from .policy import PRESETS
    if isinstance(names, str):
        parts = names.split(",")
    elif isinstance(names, list) and all(isinstance(n, str) for n in names):
        parts = names
    else:
        parts = None
    allowed = "one or more of " + ", ".join(PRESETS) + " joined by commas"
    unknown = [p for p in parts or () if p.strip() and p.strip() not in PRESETS]
    if unknown:
        raise UserError(f"{where}: {names!r} is not allowed: unknown policy {unknown[0]!r} "
                        f"({allowed})")
    if not parts or any(not p.strip() for p in parts):
        raise UserError(f"{where}: {names!r} is not allowed: {allowed}")
    stripped = [p.strip() for p in parts]
    twice = next((p for i, p in enumerate(stripped) if p in stripped[:i]), None)
    if twice:
        raise UserError(f"{where}: {names!r} is not allowed: {twice!r} is named twice")
    return ",".join(stripped)


def check_policy_options(options, key=lambda k: k):
    """Every policy option known and converted by its rule (``"1"`` -> 1; None dropped);
    ``key(k)`` spells an option's name for the message (``--hint`` or
    ``FILE: policies.x.hint``)."""
    fields = policy_fields()
    checked = {}
    for k, v in options.items():
        if v is None:
            continue
        if k not in fields:
            raise UserError(f"{key(k)}: unknown policy option (known: {', '.join(fields)})")
        checked[k] = check(key(k), k, v, RULES.get(k) or _rule_for_default(fields[k]))
    return checked


def check_policy(where, names, options, key=lambda k: k):
    """Check names and every option (``check_policy_options``), then the combination;
    returns the Policy."""
    from .policy import make_policy
    names = check_policy_names(where, names)
    checked = check_policy_options(options, key)
    try:
        policy = make_policy(names, **checked)
    except (ValueError, TypeError) as e:
        raise UserError(f"{where}: {e}") from None
    presets = make_policy(names)
    for k, v in checked.items():
        if isinstance(v, bool) and getattr(presets, k) == v:
            raise UserError(f"{key(k)}: has no effect: the policy {names} has it "
                            f"{'on' if v else 'off'} already")
        switch, preset = OPTION_NEEDS.get(k, (None, None))
        if switch and not getattr(policy, switch):
            raise UserError(f"{key(k)}: has no effect without the {preset} policy "
                            f"(the policy is {names})")
    if checked.get("pfmemalloc") is not None and policy.hint != "lru_bit":
        raise UserError(f"{key('pfmemalloc')}: has no effect without hint lru_bit")
    return policy


#: Policy options that only matter with a switch on: (the switch, a preset that turns it on).
OPTION_NEEDS = {"offload_batch_pages": ("offload", "offload"),
                "offload_device": ("offload", "offload"),
                "offload_watermark": ("offload", "offload"),
                "offload_period_ns": ("offload", "offload"),
                "hint": ("track", "pg_zeroed"), "free_signal": ("track", "pg_zeroed"),
                "pfmemalloc": ("track", "pg_zeroed"),
                "reporting_order": ("reporting", "reporting"),
                "reporting_delay_ns": ("reporting", "reporting")}


def policy_fields():
    """Policy option names and their defaults (zeroing.policy.Policy's fields)."""
    import dataclasses

    from .policy import Policy
    return {f.name: f.default for f in dataclasses.fields(Policy)}


def _rule_for_default(default):
    """A rule for a policy option that has none in RULES: its default's type decides."""
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Int(0, 2**63 - 1)
    if isinstance(default, float):
        return Float(-1e300, 1e300)
    return Text()


def check_backend(where, backend, mode):
    """In content mode the backend must exist here (a GPU one is probed)."""
    check(where, "backend", backend)
    if mode == "content":
        from kernels import get_backend
        try:
            chosen = get_backend(backend)
        except (RuntimeError, ValueError) as e:
            raise UserError(f"{where}: {e}") from None
        if hasattr(chosen, "choose_stores"):  # the CPU backend's store kind, from the environment
            try:
                chosen.choose_stores()
            except ValueError as e:
                raise UserError(str(e)) from None


#: Host bytes per page of the zone: allocator state (10) plus the engine's truth byte,
#: writer (8) and page-bit byte; content mode adds the 4 KiB page itself.
METADATA_BYTES_PER_PAGE = 20
PAGE_SIZE = 4096


def available_memory():
    """MemAvailable (bytes) from /proc/meminfo, else free physical memory, else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


#: Bytes per event of a generated workload (EVENT_DTYPE) and of the engine's per-event output.
EVENT_BYTES = 24 + 8


def check_memory(where, nr_pages, mode="metadata", backend="auto", available=None, events=0):
    """Refuse, before anything is allocated, a zone (and ``events`` events, where known up
    front) whose host arrays would not fit.

    A GPU backend holds the pool on the device (checked there when the pool is made); the
    CPU backends hold it in host memory, so content mode counts 4 KiB per page here.
    ``where``: the option to name, or (the pages' option, the events' option): the message
    names the events' only if the zone alone would fit.
    """
    zone = nr_pages * METADATA_BYTES_PER_PAGE
    if mode == "content" and (backend in ("numpy", "numba")
                              or (backend == "auto" and not _gpu_present())):
        zone += nr_pages * PAGE_SIZE
    need = zone + events * EVENT_BYTES
    available = available_memory() if available is None else available
    if isinstance(where, tuple):
        where = where[1] if available is not None and zone <= available else where[0]
    if available is not None and need > available:
        what = f"{nr_pages} pages ({nr_pages * PAGE_SIZE / 2**30:.1f} GiB zone, {mode} mode)"
        if events:
            what += f" and {events} events"
        raise UserError(f"{where}: {what} need {need / 2**30:.1f} GiB of memory but this "
                        f"machine has {available / 2**30:.1f} GiB available")
    return nr_pages


def _gpu_present():
    from kernels import get_backend
    return get_backend("auto").name not in ("numba", "numpy")


def refuse_odd_file(path, role):
    """A folder, device or pipe where ``role`` (a file we write or lock) goes is one line
    naming it, before anything waits on it or works towards it; a regular file or none is
    fine."""
    if os.path.lexists(path) and not os.path.isfile(path):
        what = ("a link that leads to no file (to nothing, or in a loop)"
                if os.path.islink(path) and not os.path.exists(path) else
                "not a regular file (a folder, device or pipe)")
        raise UserError(f"{path} is {what} where {role} goes: move it away")


def output_target(path, where=None):
    """The file a result for ``path`` is written to: ``path``, or where its chain of symbolic
    links ends (the link itself is never replaced). A link to an open file descriptor
    (/dev/stdout, /dev/fd/N, /proc/...) is refused: a result replaces a file, it is not
    written into a stream (``--json /dev/stdout`` replaced the system's /dev/stdout link)."""
    target = path
    for _ in range(40):  # the kernel's own limit on links followed
        if not os.path.islink(target):
            return target
        link = os.readlink(target)
        target = os.path.normpath(os.path.join(os.path.dirname(target), link))
        if target == "/proc" or target.startswith("/proc/") or link.startswith("/proc/"):
            raise UserError(f"{where + ': ' if where else ''}{path} is a link to an open file "
                            f"({link}), not a file: results are written by replacing a file; "
                            "name one")
    raise UserError(f"{where + ': ' if where else ''}{path}: too many levels of symbolic links")


def check_output_file(where, path, inputs=None):
    """A file we will write at the end (atomically: a temporary beside it, then a rename):
    a regular file or none yet, in an existing folder where we can create one, up front.
    ``inputs``: {option: path} of the files the command reads; writing over one is refused."""
    if not path:
        raise UserError(f"{where}: an empty path: name a file")
    if path.endswith(os.sep) and not os.path.isdir(path):
        raise UserError(f"{where}: {path} ends in {os.sep}: a folder's name, not a file's")
    for source, given in (inputs or {}).items():
        if given and os.path.exists(path) and os.path.exists(given) \
                and os.path.samefile(path, given):
            raise UserError(f"{where}: {path} is the {source} file this command reads: "
                            "name another file for the result")
    path = output_target(path, where)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise UserError(f"{where}: {path} is a folder, not a file")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UserError(f"{where}: {path} is not a regular file (a device, pipe or socket): "
                        "results are written by replacing the file")
    if not os.path.isdir(folder):
        raise UserError(f"{where}: {path}: {_missing_folder(folder)}")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".probe-")
    except OSError as e:
        raise UserError(f"{where}: {path}: cannot create a file in {folder} "
                        f"({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
    # The result is written to a temporary beside it first (write_text): its name must fit.
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    extra = len(f".tmp.{os.getpid()}")
    if len(os.fsencode(os.path.basename(path))) + extra > name_max:
        raise UserError(f"{where}: {path}: the file name is too long (at most "
                        f"{name_max - extra} bytes here: a temporary beside it takes {extra} "
                        "more)")
    return path


def _missing_folder(folder):
    """Why ``folder`` is no folder: the first part of it that is missing or is a file."""
    probe = folder
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if os.path.exists(probe) and not os.path.isdir(probe):
        return f"{probe} is a file, not a folder"
    return f"folder {folder} does not exist"


def check_output_folder(where, path):
    """A folder we will create (or reuse): no file in the way, a writable parent, and (tried
    now, then removed) one that can be made."""
    if not path:
        raise UserError(f"{where}: an empty path: name a folder")
    target = probe = os.path.realpath(path)  # as the system walks it: "link/.." too
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise UserError(f"{where}: {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK):
        raise UserError(f"{where}: {path}: {probe} is not writable")
    # Made and removed again (every folder made, also where a deeper one failed): /proc and
    # /sys pass the tests above as root, and refuse a folder.
    missing = []
    while target != probe:
        missing.append(target)
        target = os.path.dirname(target)
    made = []
    try:
        for folder in reversed(missing):
            os.mkdir(folder)
            made.append(folder)
    except OSError as e:
        raise UserError(f"{where}: {path}: cannot be made ({e.strerror or e})") from None
    finally:
        for folder in reversed(made):
            os.rmdir(folder)
    return path


def check_workload_size(name_where, name, params, pages):
    """What a workload's parameters make on ``pages`` pages (``workloads.check_together``
    with the zone's size): too many events is one line before anything runs."""
    from .workloads import check_together
    try:
        check_together(name, params, pages)
    except ValueError as e:
        raise UserError(f"{name_where} {name}: {e}") from None


def check_workload(name_where, name, params, key):
    """Workload name and parameters (``key(k)`` spells a parameter for the message); returns
    the parameters converted, None values dropped."""
    from .workloads import WORKLOADS, _on_off, check_together, convert_params
    if not isinstance(name, str) or name not in WORKLOADS:
        raise UserError(f"{name_where}: {name!r} is not allowed: one of {', '.join(WORKLOADS)}")
    spec = WORKLOADS[name][1]
    ranged = {}
    for k, v in params.items():
        rule = None if v is None or k not in spec else (
            RULES.get(k) or {int: Int(0, BIG), float: Float(0, 1e9), _on_off: Bool()}.get(spec[k]))
        ranged[k] = v if rule is None else check(key(k), k, v, rule)
    try:
        converted = convert_params(name, ranged, key)  # a rule-less value: its parser checks it
    except ValueError as e:
        raise UserError(str(e)) from None
    try:
        check_together(name, converted)
    except ValueError as e:
        raise UserError(f"{name_where} {name}: {e}") from None
    return converted


def check_input_file(where, path):
    """A file we will read: it exists, is a regular file (a pipe or device could block, end
    early, or never end; a trace is read twice) and is readable."""
    if not path:
        raise UserError(f"{where}: an empty path: name a file")
    if not os.path.isfile(path):
        odd = os.path.exists(path) and not os.path.isdir(path)
        raise UserError(f"{where}: {path}: {not_a_file(path)}"
                        + (": save it to a file first" if odd else ""))
    if not os.access(path, os.R_OK):
        raise UserError(f"{where}: {path}: not readable")
    return path
