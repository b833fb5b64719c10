"""One way to report results: pretty JSON on standard output, and the same text in a file when asked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def emit_json(payload: Any, path: str | Path | None = None) -> str:
    """Print ``payload`` as indented JSON and, when ``path`` is given, write the same text there."""
    text = json.dumps(payload, indent=2)
    if path:  # written before printing, so a closed stdout (``... | head``) cannot lose the file
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)  # a long evaluation must not end in a missing folder
            Path(path).write_text(text + "\n")
        except OSError as error:
            print(text)  # the results of a long evaluation are not lost with the file
            raise OSError(f"cannot write {path}: {error.strerror or error}; the results are printed above") from error
    print(text)
    return text


def script_parser(doc: str | None) -> argparse.ArgumentParser:
    """The argument parser of a benchmark or script: its whole module docstring (what it measures, its usage lines
    and their defaults) as the ``--help`` text, laid out as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
