"""One way every command ends, and the ``profcast`` console command that dispatches to them.

A user error (``ProfcastError``) becomes one line on stderr, ``profcast: error: ...``, and exit
code 2; Ctrl-C exits 130 and a reader that stops early (``| head``) 141, without a traceback.

    profcast train -m regressor=rf,knn anchor=g3s.xlarge     # = python -m profcast.train ...
    profcast predict --profile P --anchor g3s.xlarge          # = python -m profcast.predict ...
    profcast web                                              # = python -m profcast.web (the forecast page)
    profcast atlas --data ../shared/data/aiconfigurator       # = python -m profcast.atlas (kernel atlas coverage)
"""

from __future__ import annotations

import importlib
import os
import sys

from profcast.errors import ProfcastError, print_error

EXIT_BROKEN_PIPE = 141  # the shell's code for a writer whose reader closed the pipe (128 + SIGPIPE)
# profcast <command> -> the module whose main(argv) runs it (train is Hydra's and reads sys.argv).
COMMANDS = {
    "train": "profcast.train",
    "predict": "profcast.predict",
    "registry": "profcast.registry",
    "generate": "profcast.generate.__main__",
    "convert": "profcast.convert",
    "web": "profcast.web.__main__",
    "collect": "profcast.collect.__main__",
    "atlas": "profcast.atlas.__main__",
}


def exit_code(main, argv=None, stop_note: str = "") -> int:
    """Run ``main(argv)`` and return its exit code; a user error prints one line and gives 2.

    A stop (Ctrl-C 130, SIGTERM turned into a stop 143) prints one line ending in ``stop_note``.
    """
    try:
        code = main(argv) or 0
        sys.stdout.flush()  # inside the try: a reader that stopped early (| head) is met here, not at exit
        return code
    except BrokenPipeError:  # the reader of our output went away: nothing left to say, and no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python flushes stdout again at exit
        return EXIT_BROKEN_PIPE
    except ProfcastError as error:
        print_error(error)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C (130), or SIGTERM where a command turned it into a stop (143)
        from profcast.stops import stop_exit_code

        return stop_exit_code(stop, note=stop_note)


def run_cli(main, argv=None) -> None:
    """Run ``main(argv)`` as a command: exit with its code (see ``exit_code``)."""
    sys.exit(exit_code(main, argv))


def main(argv=None) -> int:
    """``profcast <command> [args]``: run one of COMMANDS with the remaining arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        if argv and argv[0] not in ("-h", "--help"):
            raise ProfcastError(f"unknown command {argv[0]!r}; commands: {known}")
        print(f"usage: profcast <command> [args]   commands: {known}\n       profcast <command> --help")
        return 0
    command, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[command])
    if command == "train":  # Hydra parses sys.argv itself
        sys.argv = [f"profcast {command}", *rest]
        return module.command()
    return module.main(rest)


def console() -> None:
    """Entry point of the ``profcast`` console script."""
    run_cli(main)
