"""Exercise 3.1: RCU(channels), forward(x) = x + conv2(relu(conv1(relu(x))))."""

import torch
import torch.nn.functional as F
from torch import nn

from rnlib import blocks

EXERCISE = "3.1"


class _Convs(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)


# -- correct ---------------------------------------------------------------------------------
class correct_as_in_the_paper(_Convs):
    def forward(self, x):
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return x + out


class correct_sequential(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.branch = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                    nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x):
        return x + self.branch(x)


class correct_same_padding_other_names_reversed_creation(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.second = nn.Conv2d(channels, channels, kernel_size=3, padding="same", bias=False)
        self.first = nn.Conv2d(channels, channels, kernel_size=3, padding="same")

    def forward(self, x):
        return x + self.second(torch.relu(self.first(x.relu())))


class correct_module_list_loop(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, 1, 1) for _ in range(2))

    def forward(self, x):
        out = x
        for conv in self.convs:
            out = conv(out.clamp(min=0))
        return out + x


class correct_inplace_relu_on_an_intermediate(_Convs):
    def __init__(self, channels):
        super().__init__(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv1(F.relu(x))
        out = self.relu(out)  # in place on conv1's output: harmless
        return x + self.conv2(out)


class correct_bias_everywhere(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1, bias=True)
        self.b = nn.Conv2d(channels, channels, 3, padding=1, bias=True)

    def forward(self, x):
        residual = x
        x = F.relu(x)
        x = self.a(x)
        x = F.relu(x)
        x = self.b(x)
        return x + residual


# -- wrong -----------------------------------------------------------------------------------
class wrong_no_residual(_Convs):
    EXPECTED = r"residual connection is missing"

    def forward(self, x):
        return self.conv2(F.relu(self.conv1(F.relu(x))))


class wrong_relu_shortcut(_Convs):
    EXPECTED = r"shortcut carries relu\(x\)"

    def forward(self, x):
        x = F.relu(x)
        return x + self.conv2(F.relu(self.conv1(x)))


class wrong_inplace_relu_on_the_input(_Convs):
    EXPECTED = r"changes its input in place\n.*\nHint: an in-place ReLU"

    def __init__(self, channels):
        super().__init__(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv1(self.relu(x))
        return x + self.conv2(F.relu(out))


class wrong_no_first_relu(_Convs):
    EXPECTED = r"first ReLU is missing"

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(x)))


class wrong_no_middle_relu(_Convs):
    EXPECTED = r"ReLU between the two convolutions is missing"

    def forward(self, x):
        return x + self.conv2(self.conv1(F.relu(x)))


class wrong_post_activation(_Convs):
    EXPECTED = r"post-activation"

    def forward(self, x):
        return x + F.relu(self.conv2(F.relu(self.conv1(x))))


class wrong_no_padding(nn.Module):
    EXPECTED = r"'conv1' turns \d+x\d+ into \d+x\d+.*\n.*\nHint: stride 1 keeps the size"

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class wrong_stride_two(_Convs):
    EXPECTED = r"'conv2' turns \d+x\d+ into \d+x\d+"

    def __init__(self, channels):
        super().__init__(channels)
        self.conv2.stride = (2, 2)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class wrong_one_conv_used_twice(nn.Module):
    EXPECTED = r"'conv' is applied 2 times"

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv(F.relu(self.conv(F.relu(x))))


class wrong_plain_list(nn.Module):
    EXPECTED = r"plain Python list.*\n.*\nHint: use nn.ModuleList"

    def __init__(self, channels):
        super().__init__()
        self.convs = [nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2)]

    def forward(self, x):
        return x + self.convs[1](F.relu(self.convs[0](F.relu(x))))


class wrong_convs_created_in_forward(nn.Module):
    EXPECTED = r"creates nn.Conv2d layers inside forward"

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        conv1 = nn.Conv2d(self.channels, self.channels, 3, padding=1)
        conv2 = nn.Conv2d(self.channels, self.channels, 3, padding=1)
        return x + conv2(F.relu(conv1(F.relu(x))))


class wrong_one_by_one_kernels(nn.Module):
    EXPECTED = r"has a 1x1 kernel, expected 3x3"

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class wrong_batch_norm_added(_Convs):
    EXPECTED = r"parameters outside its nn.Conv2d layers \(bn.weight"

    def __init__(self, channels):
        super().__init__(channels)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return x + self.bn(self.conv2(F.relu(self.conv1(F.relu(x)))))


class wrong_functional_convolution(nn.Module):
    EXPECTED = r"convolves with F.conv2d"

    def __init__(self, channels):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(channels, channels, 3, 3) * 0.1)
        self.w2 = nn.Parameter(torch.randn(channels, channels, 3, 3) * 0.1)

    def forward(self, x):
        out = F.conv2d(F.relu(x), self.w1, padding=1)
        return x + F.conv2d(F.relu(out), self.w2, padding=1)


class wrong_detached_shortcut(_Convs):
    EXPECTED = r"gradient reaching the input differs"

    def forward(self, x):
        return x.detach() + self.conv2(F.relu(self.conv1(F.relu(x))))


class wrong_three_convolutions(nn.Module):
    EXPECTED = r"it has 3 nn.Conv2d layers; rnlib's has 2"

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(*[nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))
                                    for _ in range(3)])

    def forward(self, x):
        return x + self.body(x)


class wrong_constructor_signature(_Convs):
    EXPECTED = r"building it as .*raised TypeError"

    def __init__(self, in_channels, out_channels):
        super().__init__(in_channels)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


# -- explicit padding, and the layers' own weights applied in other ways ----------------------
class correct_zero_pad_then_unpadded_convolutions(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.pad = nn.ZeroPad2d(1)
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.conv2 = nn.Conv2d(channels, channels, 3, bias=False)

    def forward(self, x):
        out = self.conv1(self.pad(F.relu(x)))
        return x + self.conv2(self.pad(F.relu(out)))


class correct_functional_conv_with_the_layers_weights(_Convs):
    def forward(self, x):
        out = F.conv2d(F.relu(x), self.conv1.weight, self.conv1.bias, padding=1)
        return x + F.conv2d(F.relu(out), self.conv2.weight, None, 1, 1)


class correct_calls_forward_of_its_layers(_Convs):
    def forward(self, x):
        return x + self.conv2.forward(F.relu(self.conv1.forward(F.relu(x))))


class wrong_relu6(_Convs):
    EXPECTED = r"it clamps at an upper bound \(ReLU6 or hardtanh\)"

    def forward(self, x):
        return x + self.conv2(F.relu6(self.conv1(F.relu6(x))))


# -- rnlib's own RCU, which the exercise asks to write -----------------------------------------
library_imported = blocks.RCU


class library_subclass(blocks.RCU):
    pass


class library_wrapper(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.inner = blocks.RCU(channels)

    def forward(self, x):
        return self.inner(x)


class library_borrows_the_forward(_Convs):
    def forward(self, x):
        return blocks.RCU.forward(self, x)
