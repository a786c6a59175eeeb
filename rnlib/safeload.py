"""The one way rnlib opens a file written by ``torch.save`` (checkpoints, backbone weights, the
authors' weights): ``torch.load(..., weights_only=True)``, so opening a file runs no code from
it, and every failure to read it becomes one sentence that names the file and the fix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_safely"]


def load_safely(path: str | Path, what: str, *, missing: str, fix: str,
                if_trusted: str = "") -> Any:
    """The tensors and plain data in ``path``, on the CPU.

    ``what`` names the file in messages ("checkpoint"); ``missing`` is the fix for a file
    that is not there, ``fix`` the one for a damaged file, and ``if_trusted`` what to do with
    a file that holds Python objects besides tensors once the user has unpickled it (default:
    ``fix``). Raises FileNotFoundError or ValueError; an OSError (no permission) is left as is.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}; {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 -- every failure to unpickle becomes one message
        text = " ".join(str(err).split())
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:  # a pickle that imports something to call: it carries code
            warning = re.search(r"Re-running `torch.load`.*?trusted source\.", text)
            raise ValueError(
                f"the {what} {path} carries code: Python objects besides tensors "
                f"({found.group(1)}), so rnlib did not unpickle it (torch.load(..., "
                f"weights_only=True) never runs code from a file). torch warns: "
                f"{warning.group(0) if warning else 'unpickling it can run code.'} If you trust "
                f"this file, unpickle it yourself: state = torch.load({str(path)!r}, "
                f"map_location='cpu', weights_only=False); then {if_trusted or fix}") from err
        detail = str(err).split("WeightsUnpickler error:")[-1].split("Check the doc")[0]
        detail = " ".join(detail.split())[:200] or type(err).__name__
        raise ValueError(f"cannot read the {what} {path} ({detail}): it is damaged or not a "
                         f"PyTorch file; {fix}") from err
