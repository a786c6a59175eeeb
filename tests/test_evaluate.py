"""Evaluation of real photographs: mixed sizes in one batch (padded with the ignore label, which
no metric counts), multi-scale and flip inference on odd, non-square images."""

import torch
from torch.utils.data import DataLoader

from rnlib.data import IGNORE_INDEX, pad_collate
from rnlib.evaluate import evaluate, predict


class Oracle(torch.nn.Module):
    """Logits that say the true class of every pixel of ``truth`` (same size as the input)."""

    def __init__(self, truth: dict[tuple[int, int], torch.Tensor], num_classes: int = 3):
        super().__init__()
        self.truth, self.num_classes = truth, num_classes
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        labels = self.truth[tuple(x.shape[-2:])]
        return 10.0 * torch.nn.functional.one_hot(labels.clamp(max=self.num_classes - 1),
                                                  self.num_classes).permute(0, 3, 1, 2).float()


def test_padded_batches_of_mixed_sizes_count_only_real_pixels():
    samples = [(torch.randn(3, 37, 29), torch.randint(0, 3, (37, 29))),
               (torch.randn(3, 41, 33), torch.randint(0, 3, (41, 33)))]
    images, masks = pad_collate(samples)
    assert images.shape == (2, 3, 41, 33) and masks.shape == (2, 41, 33)
    assert (masks[0, 37:] == IGNORE_INDEX).all() and (masks[0, :, 29:] == IGNORE_INDEX).all()
    assert (images[0, :, 37:] == 0).all()
    wrong = masks.clone()
    wrong[0, 37:] = 0  # what the oracle "predicts" in the padding: never counted
    model = Oracle({(41, 33): wrong})
    result = evaluate(model, DataLoader(samples, batch_size=2, collate_fn=pad_collate), 3)
    assert result.miou == 1.0 and result.pixel_accuracy == 1.0


def test_multi_scale_and_flip_on_odd_non_square_images():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    images = torch.randn(2, 3, 37, 53)
    probs = predict(model, images, scales=(0.75, 1.0, 1.25), flip=True)
    assert probs.shape == (2, 4, 37, 53)
    assert torch.allclose(probs.sum(1), torch.ones(2, 37, 53), atol=1e-5)
    flipped = predict(model, images.flip(-1), scales=(0.75, 1.0, 1.25), flip=True).flip(-1)
    assert torch.allclose(probs, flipped, atol=1e-5)  # averaging with the flip is symmetric
