"""Exercise 10.1: fuse_conv_bn(conv, bn) -> one nn.Conv2d equal to bn(conv(x)) in eval mode."""

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from corpus import expect
from rnlib.deploy import fuse_batchnorm

EXERCISE = "10.1"


def _scale(bn):
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _fold_into(fused, conv, bn):
    scale = _scale(bn)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused


def correct_new_convolution(conv, bn):
    return _fold_into(nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                conv.stride, conv.padding, conv.dilation, conv.groups, bias=True,
                                padding_mode=conv.padding_mode), conv, bn)


def library_torch_utility(conv, bn):
    return fuse_conv_bn_eval(conv, bn)


def library_rnlib_deploy(conv, bn):
    return fuse_batchnorm(nn.Sequential(conv, bn))[0]


def correct_deepcopy(conv, bn):
    fused = copy.deepcopy(conv)
    scale = _scale(bn).detach()
    bias = conv.bias.detach() if conv.bias is not None else 0
    fused.weight = nn.Parameter(conv.weight.detach() * scale.view(-1, 1, 1, 1))
    fused.bias = nn.Parameter(bn.bias.detach() + (bias - bn.running_mean) * scale)
    return fused


@expect(r"running mean is not subtracted")
def wrong_without_the_mean(conv, bn):
    fused = correct_new_convolution(conv, bn)
    with torch.no_grad():
        bias = conv.bias if conv.bias is not None else 0
        fused.bias.copy_(bn.bias + bias * _scale(bn))
    return fused


@expect(r"convolution's own bias is lost")
def wrong_drops_the_conv_bias(conv, bn):
    fused = correct_new_convolution(conv, bn)
    with torch.no_grad():
        fused.bias.copy_(bn.bias - bn.running_mean * _scale(bn))
    return fused


@expect(r"bn.eps is left out")
def wrong_without_eps(conv, bn):
    scale = bn.weight / torch.sqrt(bn.running_var)
    fused = correct_new_convolution(conv, bn)
    with torch.no_grad():
        bias = conv.bias if conv.bias is not None else 0
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused


@expect(r"divides by the variance")
def wrong_variance(conv, bn):
    scale = bn.weight / (bn.running_var + bn.eps)
    fused = correct_new_convolution(conv, bn)
    with torch.no_grad():
        bias = conv.bias if conv.bias is not None else 0
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused


@expect(r"changes the convolution or batch norm it was given")
def wrong_folds_in_place(conv, bn):
    scale = _scale(bn).detach()
    with torch.no_grad():
        conv.weight.mul_(scale[:, None, None, None])
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        new_bias = bn.bias + (bias - bn.running_mean) * scale
    conv.bias = nn.Parameter(new_bias.detach())
    return conv


@expect(r"has stride=\(1, 1\), the original stride=\(2, 2\)\n.*\nHint: keep every setting")
def wrong_forgets_the_stride(conv, bn):
    scale = _scale(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      padding=conv.padding, bias=True)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        bias = conv.bias if conv.bias is not None else 0
        fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused


@expect(r"returns Sequential, not an nn.Conv2d")
def wrong_returns_both(conv, bn):
    return nn.Sequential(conv, bn)


@expect(r"fails on a grouped convolution \(groups=\d\)")
def wrong_drops_groups(conv, bn):
    return _fold_into(nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                conv.stride, conv.padding, conv.dilation, bias=True,
                                padding_mode=conv.padding_mode), conv, bn)


@expect(r"has padding_mode='zeros', the original padding_mode='reflect'")
def wrong_drops_padding_mode(conv, bn):
    return _fold_into(nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                conv.stride, conv.padding, conv.dilation, conv.groups,
                                bias=True), conv, bn)


@expect(r"loses the sign of bn.weight")
def wrong_scale_from_the_square_of_gamma(conv, bn):
    scale = torch.sqrt(bn.weight ** 2 / (bn.running_var + bn.eps))
    fused = copy.deepcopy(conv)
    bias = conv.bias.detach() if conv.bias is not None else 0
    fused.weight = nn.Parameter(conv.weight.detach() * scale.detach().view(-1, 1, 1, 1))
    fused.bias = nn.Parameter((bn.bias + (bias - bn.running_mean) * scale).detach())
    return fused


def correct_deepcopy_keeps_groups_and_padding_mode(conv, bn):
    fused = copy.deepcopy(conv)
    std = (bn.running_var + bn.eps).sqrt()
    with torch.no_grad():
        fused.weight.mul_((bn.weight / std).reshape(-1, 1, 1, 1))
        shift = bn.bias - bn.running_mean * bn.weight / std
        if fused.bias is None:
            fused.bias = nn.Parameter(shift.clone())
        else:
            fused.bias.copy_(shift + conv.bias * bn.weight / std)
    return fused
