"""A photograph segmented by the authors' released Light-Weight RefineNet (notebook 10).

Where a download works (Colab), :func:`segment_photo` fetches one of the files that
``rnlib.convert.RELEASES`` lists (once: it is kept in ``folder``), converts it with
``rnlib.convert.load_authors_model`` and segments a photograph: by default Grace Hopper's
portrait, which ships with matplotlib, so no image is downloaded. Offline, or when the file is
gone from where the authors put it, it raises :class:`Unavailable` with one line that says so.
The weights are the authors' (their terms: academic use).

    from rnlib import photo
    try:
        result = photo.segment_photo()
    except photo.Unavailable as why:
        print(why)
    else:
        photo.show(result)
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import cbook
from PIL import Image
from torchvision.transforms.v2.functional import to_image

from . import convert
from .data import eval_transform
from .data.sources import VOC_CLASSES

__all__ = ["Unavailable", "Segmented", "find_release", "download", "fetch_weights",
           "segment_photo", "show"]

PHOTO = "grace_hopper.jpg"  # in matplotlib's sample data: a photograph that needs no download
Download = Callable[[str, Path], None]


class Unavailable(RuntimeError):
    """The weights could not be had here (offline, a dead link, a damaged file): one line."""


class Segmented(NamedTuple):
    photo: np.ndarray  # (H, W, 3) uint8
    labels: torch.Tensor  # (H, W) class indices
    classes: Sequence[str]  # the name of each class index
    source: str  # which network, trained on what


def find_release(arch: str = "lw-50", dataset: str = "PASCAL VOC") -> convert.Release:
    """The authors' file for ``arch`` trained on ``dataset`` (the start of its name)."""
    for release in convert.RELEASES:
        if release.arch == arch and release.dataset.startswith(dataset):
            return release
    known = ", ".join(f"{r.arch} on {r.dataset}" for r in convert.RELEASES)
    raise ValueError(f"the authors released no {arch} for {dataset!r}; they released: {known}")


def download(url: str, path: Path, timeout: float = 60) -> None:
    """Save ``url`` at ``path`` (urllib; raises OSError when it cannot)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, path.open("wb") as f:
        shutil.copyfileobj(response, f)


def fetch_weights(release: convert.Release, folder: str | os.PathLike = "weights",
                  download: Download = download) -> Path:
    """The file of ``release`` in ``folder``, downloaded the first time."""
    dataset = release.dataset.split(" (")[0].lower().replace(" ", "-")
    path = Path(folder) / f"authors-{release.arch}-{dataset}.pth"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        download(release.url, partial)
    except OSError as err:
        partial.unlink(missing_ok=True)
        reason = " ".join(str(getattr(err, "reason", err)).split())[:120]
        raise Unavailable(f"no photograph: could not download the authors' {release.arch} "
                          f"weights from {release.url} ({reason}); offline this is expected, "
                          f"and the cell skips") from err
    partial.replace(path)
    return path


def segment_photo(arch: str = "lw-50", dataset: str = "PASCAL VOC",
                  folder: str | os.PathLike = "weights", photo: str | os.PathLike | None = None,
                  download: Download = download) -> Segmented:
    """The authors' ``arch`` trained on ``dataset``, converted to rnlib, on ``photo`` (default:
    matplotlib's portrait of Grace Hopper). Raises :class:`Unavailable` when the weights cannot
    be had; a downloaded file that is not the authors' weights is removed."""
    release = find_release(arch, dataset)
    path = fetch_weights(release, folder, download)
    try:
        model = convert.load_authors_model(path)
    except (ValueError, KeyError) as err:
        path.unlink(missing_ok=True)  # a web page instead of the weights: fetch again next time
        raise Unavailable(f"no photograph: the file from {release.url} is not the authors' "
                          f"weights ({str(err).splitlines()[0][:120]})") from err
    image = Image.open(photo if photo is not None else cbook.get_sample_data(PHOTO))
    image = image.convert("RGB")
    x = eval_transform()(to_image(image)).unsqueeze(0)  # (1, 3, H, W), ImageNet-normalised
    with torch.inference_mode():
        labels = model(x).argmax(1)[0]  # (H, W)
    k = model.num_classes
    classes = VOC_CLASSES if k == len(VOC_CLASSES) else [f"class {i}" for i in range(k)]
    return Segmented(np.asarray(image), labels, classes,
                     f"the authors' {release.arch} ({release.dataset})")


def show(result: Segmented) -> plt.Figure:
    """The photograph and its labels side by side, each class present named in a legend."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    axes[0].imshow(result.photo)
    axes[0].set_title("photograph", fontsize=9)
    k = len(result.classes)
    cmap = plt.get_cmap("tab20", k)
    axes[1].imshow(result.labels, cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
    axes[1].set_title(f"labels from {result.source}", fontsize=9)
    present = [int(c) for c in result.labels.unique()]
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(c)) for c in present]
    axes[1].legend(handles, [result.classes[c] for c in present], fontsize=7,
                   loc="lower right", framealpha=0.8)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    return fig
