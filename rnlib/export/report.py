"""What an export wrote, and how far the file's logits are from the eager model's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .formats import TOLERANCE


@dataclass
class ExportedFile:
    """What :func:`export_model` wrote: the file, its format and the smallest H, W it takes."""

    path: Path
    fmt: str
    min_side: int
    seconds: float

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size


class Difference(NamedTuple):
    """The largest |file - eager| over one random batch of ``size`` (H, W), and the eager
    logits' largest magnitude ``scale``, by which to judge it."""

    size: tuple[int, int]
    max_abs_diff: float
    scale: float

    @property
    def relative(self) -> float:
        return self.max_abs_diff / max(self.scale, 1e-12)

    def within(self, tolerance: float = TOLERANCE) -> bool:
        """Whether the file is as good as eager: ``relative`` at most ``tolerance``."""
        return self.relative <= tolerance

    @property
    def ok(self) -> bool:
        """Within the default :data:`~rnlib.export.TOLERANCE`."""
        return self.within()


@dataclass
class ExportReport:
    """What ``rnlib export`` did: the file, how it was made, and the check against eager."""

    exported: ExportedFile
    model: str
    fold_bn: bool
    differences: list[Difference] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return all(d.within(self.tolerance) for d in self.differences)

    def summary(self) -> str:
        e = self.exported
        lines = [f"wrote {e.path} ({e.fmt}, {e.bytes / 2**20:.1f} MiB) from {self.model}"
                 f"{' with batch norm folded' if self.fold_bn else ''} in {e.seconds:.1f} s; "
                 f"dynamic batch, height and width (H, W >= {e.min_side})"]
        for d in self.differences:
            verdict = "ok" if d.within(self.tolerance) else f"ABOVE {self.tolerance:g}"
            lines.append(f"  {d.size[0]}x{d.size[1]}: largest |{e.fmt} - eager| = "
                         f"{d.max_abs_diff:.2e} (logits up to {d.scale:.2f}; relative "
                         f"{d.relative:.1e}, {verdict})")
        return "\n".join(lines)

