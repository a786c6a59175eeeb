"""Notebook 10's photograph: with a download (a stand-in writes a file in the authors' format)
and without one (the downloader fails as it does offline), each in one line."""

import urllib.error

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from rnlib import convert, photo
from rnlib.data.sources import VOC_CLASSES


def authors_file(path, arch="lw-50", num_classes=21):
    """A file in the authors' format: their keys and shapes, zeros (running variances one),
    each a stride-0 view of one number, so the file is small."""
    state = {}
    for e in convert.key_table(arch, num_classes):
        value = 1.0 if e.authors.endswith("running_var") else 0.0
        dtype = torch.long if e.authors.endswith("num_batches_tracked") else torch.float32
        state[e.authors] = torch.tensor(value, dtype=dtype).expand(e.shape)
    torch.save(state, path)


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 56, 3), 128, np.uint8)).save(path)
    return path


def test_with_a_download_the_photograph_is_segmented_once_fetched(tmp_path, picture):
    calls = []

    def fake_download(url, path):
        calls.append(url)
        authors_file(path)

    for _ in range(2):
        result = photo.segment_photo(folder=tmp_path / "w", photo=picture, download=fake_download)
    assert calls == [photo.find_release("lw-50", "PASCAL VOC").url]  # kept after the first
    assert result.labels.shape == (40, 56) and result.photo.shape == (40, 56, 3)
    assert list(result.classes) == list(VOC_CLASSES) and "lw-50" in result.source
    fig = photo.show(result)
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [VOC_CLASSES[int(c)] for c in result.labels.unique()]
    plt.close(fig)


def test_offline_it_says_so_in_one_line_and_leaves_nothing(tmp_path, picture):
    def offline(url, path):
        path.write_bytes(b"half a file")
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    with pytest.raises(photo.Unavailable) as why:
        photo.segment_photo(folder=tmp_path / "w", photo=picture, download=offline)
    message = str(why.value)
    assert "\n" not in message and "offline" in message and "Name or service" in message
    assert list((tmp_path / "w").iterdir()) == []


def test_a_web_page_instead_of_the_weights_is_named_and_removed(tmp_path, picture):
    def page(url, path):
        path.write_text("<html>moved</html>")

    with pytest.raises(photo.Unavailable, match="is not the authors' weights"):
        photo.segment_photo(folder=tmp_path / "w", photo=picture, download=page)
    assert list((tmp_path / "w").iterdir()) == []


def test_an_unknown_release_lists_the_released_ones():
    with pytest.raises(ValueError, match="no lw-18 for 'PASCAL VOC'.*lw-50 on PASCAL VOC"):
        photo.find_release("lw-18")
    assert photo.find_release("lw-101", "NYUv2").num_classes == 40
