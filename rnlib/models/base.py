"""What every segmentation model of rnlib shares: a backbone, a decoder, logits at input size.

As in torchvision's segmentation models, a model is a composition: the backbone turns an image
batch into a list of feature maps, the decoder turns those into class scores at some reduced
resolution, and the model resizes the scores to the input's size. Models know nothing of
data or training.
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import resize

__all__ = ["SegmentationModel", "check_images"]


def check_images(x: object, in_channels: int = 3) -> None:
    """Raise an error a student can act on unless ``x`` is a float batch (N, in_channels, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"models take a torch.Tensor of shape (N, {in_channels}, H, W), "
                        f"got {type(x).__name__}; convert with torchvision.transforms.v2.functional"
                        ".to_image(img) and add a batch dimension")
    if x.ndim == 3:
        raise ValueError(f"models take a batch (N, C, H, W), got a 3-D tensor of shape "
                         f"{tuple(x.shape)}; add the batch dimension with x.unsqueeze(0)")
    if x.ndim != 4:
        raise ValueError(f"models take a 4-D batch (N, C, H, W), "
                         f"got {x.ndim}-D shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"models take floating-point images, got {x.dtype}; convert with "
                        f"x.float() / 255 and normalise (rnlib.data.transforms does both)")
    if x.shape[1] != in_channels:
        s = "" if x.shape[1] == 1 else "s"
        raise ValueError(
            f"this model expects {in_channels}-channel images, got a tensor with {x.shape[1]} "
            f"channel{s} (shape {tuple(x.shape)}); convert with img.convert('RGB'), or for "
            f"channels-first tensors check the layout is (N, C, H, W), or build the model "
            f"with in_channels={x.shape[1]}"
        )


class SegmentationModel(nn.Module):
    """backbone -> decoder -> bilinear resize to the input size.

    ``forward(x)`` takes (N, in_channels, H, W) floats of any H, W and returns logits
    (N, num_classes, H, W). ``align_corners`` is the final resize's convention: a model whose
    decoder resizes too passes the decoder's, so that the whole model uses one.
    """

    def __init__(self, backbone: nn.Module, decoder: nn.Module, *, num_classes: int,
                 in_channels: int = 3, align_corners: bool = False) -> None:
        super().__init__()
        self.backbone = backbone
        self.decoder = decoder
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, self.in_channels)
        features = self.backbone(x)  # list of (N, C_i, H/r_i, W/r_i)
        logits = self.decoder(features)  # (N, K, H/r, W/r)
        return resize(logits, x.shape[-2:], self.align_corners)  # (N, K, H, W)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The parameters by role: ``backbone`` (pretrained, trained at a lower learning rate
        in the paper's recipe) and ``head`` (everything else)."""
        return {"backbone": list(self.backbone.parameters()),
                "head": list(self.decoder.parameters())}
