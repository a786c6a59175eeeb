"""Inside the convolutions: what oneDNN runs for one inference pass (issue 22).

torch.profiler sees ``aten::mkldnn_convolution`` as one operator. oneDNN's own log
(``ONEDNN_VERBOSE=1``) names every primitive it executes: each convolution with its
implementation (e.g. ``brgconv:avx512_core``) and the memory formats of its source, weights and
destination, and every *reorder*, a copy of a tensor from one memory format into another (of
the input before a convolution, or of the weights into the blocked layout the kernel wants).
This script runs one warm pass of a model with the log on, in a child process, and sums the
time by primitive and by kind of reorder, and lists the ten slowest convolutions.

    .venv/bin/python benchmarks/profile_onednn.py        # -> benchmarks/profile_onednn.md
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from rnlib.tables import command_line

MARK = "=== measured pass ==="


def _child(model_name: str, backbone: str, size: int, channels_last: bool) -> None:
    import rnlib

    model = rnlib.build_model(model_name, num_classes=21, backbone=backbone).eval()
    x = torch.randn(1, 3, size, size)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)  # warm-up
        print(MARK, flush=True)
        model(x)


def _parse(log: str) -> list[dict]:
    """oneDNN's ``exec`` lines after the mark: primitive, implementation, formats, shape, ms."""
    events = []
    for line in log.split(MARK, 1)[-1].splitlines():
        parts = line.split(",")
        if len(parts) < 10 or not line.startswith("onednn_verbose") or "exec" not in parts:
            continue
        at = parts.index("exec")
        kind, impl = parts[at + 2], parts[at + 3]
        formats = next((p for p in parts if p.startswith("src")), "")
        events.append({"kind": kind, "impl": impl, "formats": formats,
                       "shape": parts[-2], "ms": float(parts[-1])})
    return events


def _formats(text: str) -> str:
    """'src:f32::blocked:acdb::f0 dst:f32::blocked:aBcd16b::f0' -> 'src acdb -> dst aBcd16b'."""
    out = []
    for item in text.split():
        fields = item.split(":")
        if len(fields) >= 5:
            out.append(f"{fields[0]} {fields[1]} {fields[4]}")
    return ", ".join(out)


def report(model_name: str, backbone: str, size: int, channels_last: bool) -> str:
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", model_name, backbone, str(size),
                           str(int(channels_last))], capture_output=True, text=True, env=env,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    events = _parse(done.stdout)
    total = sum(e["ms"] for e in events)
    by = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        key = (e["kind"], e["impl"], _formats(e["formats"]) if e["kind"] == "reorder" else "")
        by[key][0] += e["ms"]
        by[key][1] += 1
    fmt = "channels_last" if channels_last else "NCHW"
    lines = [f"### {model_name} ({backbone}), inference {size}x{size}, {fmt}", "",
             f"{len(events)} primitives, {total:.1f} ms in all (oneDNN's own timing, with its "
             f"log on).", "", "| primitive | implementation | formats (reorders) | calls | ms | "
             "share |", "|---|---|---|---|---|---|"]
    for (kind, impl, formats), (ms, calls) in sorted(by.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {kind} | {impl} | {formats or '-'} | {calls} | {ms:.1f} | "
                     f"{100 * ms / total:.1f}% |")
    convs = sorted((e for e in events if e["kind"] == "convolution"), key=lambda e: -e["ms"])
    lines += ["", "Slowest convolutions:", "", "| shape | formats | ms |", "|---|---|---|"]
    for e in convs[:10]:
        lines.append(f"| {e['shape']} | {_formats(e['formats'])} | {e['ms']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("profile_onednn.md"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, backbone, size, last = args.child
        _child(name, backbone, int(size), bool(int(last)))
        return
    load = os.getloadavg()[0]
    sections = [report("refinenet", "resnet101", args.size, True),
                report("refinenet", "resnet101", args.size, False),
                report("tv-fcn", "resnet50", args.size, True)]
    text = (f"# Inside the convolutions: oneDNN's primitives\n\nMade by "
            f"`{command_line('python benchmarks/profile_onednn.py')}` on {platform.machine()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; one warm pass with "
            f"ONEDNN_VERBOSE=1; load average (1 min, shared machine) {load:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end. oneDNN's times include its logging and "
            f"the other processes' share of the cores: read the shares and the formats, not the "
            f"milliseconds.\n\n" + "\n\n".join(sections) + "\n")
    print(text)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
