"""The authors' released weights in rnlib: their key names -> rnlib's (``rnlib convert``).

The authors of RefineNet and Light-Weight RefineNet published trained networks. This module
reads a PyTorch state dict saved by their code and renames every tensor to the module of rnlib
that computes the same function, so that ``rnlib.build_model`` loads it with ``strict=True``:

    lw-50          Light-Weight RefineNet, ResNet-50    their rf_lw50    rnlib "refinenet-lw"
    lw-101         Light-Weight RefineNet, ResNet-101   their rf_lw101   rnlib "refinenet-lw"
    lw-152         Light-Weight RefineNet, ResNet-152   their rf_lw152   rnlib "refinenet-lw"
    refinenet-101  RefineNet, ResNet-101                their rf101      rnlib "refinenet"
    refinenet-152  RefineNet, ResNet-152                their RefineNet class, layers [3, 8, 36, 3]

Where the weights were published (the authors' addresses, listed in :data:`RELEASES`):

- Light-Weight RefineNet (Nekrasov, Shen, Reid, BMVC 2018), repository
  github.com/DrSleep/light-weight-refinenet, table ``models_urls`` of its ``models/resnet.py``,
  files on cloudstor.aarnet.edu.au: ResNet-50/101/152 trained on PASCAL VOC (21 classes), on
  PASCAL Person-Part (7 classes) and on NYUv2 (40 classes); ResNet-101/152 on PASCAL-Context
  (60 classes). On 14 July 2020 the VOC ResNet-50 file was replaced by weights trained on
  COCO+BSD+VOC (82.04% mean IoU on VOC validation, single scale); the BMVC file was at
  https://cloudstor.aarnet.edu.au/plus/s/2E1KrdF2Rfc5khB/download. Their MobileNet-v2
  networks are not served: rnlib has no MobileNet backbone.
- RefineNet-101 trained on PASCAL VOC (80.5% mean IoU on validation, single scale), repository
  github.com/DrSleep/refinenet-pytorch:
  https://cloudstor.aarnet.edu.au/plus/s/Owmttk9bdPROwc6/download. It is the only RefineNet
  (as opposed to Light-Weight RefineNet) that the authors published for PyTorch.
- The original release, github.com/guosheng/refinenet (MATLAB), has RefineNet-101 and -152
  for PASCAL VOC 2012, Cityscapes, NYUDv2, Person-Part, PASCAL-Context, SUN-RGBD and ADE20K on
  Google Drive and Baidu Pan. Those are MatConvNet models, not PyTorch state dicts, and this
  module does not read them (those of five datasets also use an "improved" residual pooling).
  ``refinenet-152`` is the layout that the authors' PyTorch code gives with ResNet-152
  stages; no PyTorch weights in it were published.

rnlib never downloads any of these by itself: fetch a file yourself, then
``rnlib convert FILE --out model.pt`` (or :func:`load_authors_model`). Files are read with
``torch.load(..., weights_only=True)``, so opening one runs no code. The weights are the
authors': their repositories license their work for academic use and ask commercial users to
contact them; rnlib's MIT licence does not extend to the weights. Their networks expect RGB
images scaled to [0, 1] and normalised with the ImageNet mean and standard deviation, as
``rnlib.data.eval_transform`` does.

The conversion is a table, :func:`key_table`, generated for each architecture from its ResNet
stage depths and its kind (light or full); ``tests/test_convert.py`` checks that every tensor
arrives at the module the table names, and that rnlib's model then computes the same logits as
an independent implementation of the authors' forward pass.
"""

from .architectures import ARCHITECTURES, RELEASES, Architecture, Release
from .files import convert_checkpoint, load_authors_model
from .state_dict import (
    convert_state_dict,
    guess_architecture,
    num_classes_of,
    to_authors_state_dict,
)
from .table import Entry, key_table

__all__ = ["ARCHITECTURES", "Architecture", "RELEASES", "Release", "Entry", "key_table",
           "convert_state_dict", "to_authors_state_dict", "guess_architecture", "num_classes_of",
           "load_authors_model", "convert_checkpoint"]
