"""The ``mammocad`` command: a thin dispatcher over each component's own CLI module.

Each component registers its sub-commands with ``register(subparsers)``; a handler
receives the parsed ``argparse.Namespace`` and returns an exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mammocad import __version__

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammocad",
        description="DICOM CAD node for screening mammography (research use, not a diagnosis).",
    )
    parser.add_argument("--version", action="version", version=f"mammocad {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $MAMMOCAD_CONFIG, else config/mammocad.toml)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    # Imported here so `mammocad --help` stays fast and a broken optional part
    # (e.g. torch missing) does not take down the admin commands.
    from mammocad.config import cli as config_cli
    from mammocad.model import cli as model_cli
    from mammocad.node import cli as node_cli
    from mammocad.studies import cli as studies_cli
    from mammocad.worker import cli as worker_cli

    for module in (node_cli, worker_cli, studies_cli, config_cli, model_cli):
        module.register(subparsers)
    _global_options_everywhere(subparsers)
    return parser


def _global_options_everywhere(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Accept ``--config`` after any sub-command too (``mammocad serve --config FILE``).

    The copy uses ``default=SUPPRESS`` so that, when it is not given after the
    sub-command, the value given before it (or the default) stands.
    """
    for sub in subparsers.choices.values():
        if not any("--config" in a.option_strings for a in sub._actions):
            sub.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                             help="configuration file (also accepted before the command)")
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _global_options_everywhere(action)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
