"""Exercise 5.1: ChainedResidualPooling(channels, num_blocks=4), forward(x) -> same shape."""

import torch
import torch.nn.functional as F
from torch import nn

from rnlib import blocks

EXERCISE = "5.1"


class _Convs(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(num_blocks))


def _pool(x):
    return F.max_pool2d(x, 5, stride=1, padding=2)


# -- correct ---------------------------------------------------------------------------------
class correct_as_in_the_paper(_Convs):
    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(_pool(path))
            out = out + path
        return out


class correct_sequential_blocks(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(5, 1, 2), nn.Conv2d(channels, channels, 3, padding="same",
                                                           bias=False))
            for _ in range(num_blocks))
        self.relu = nn.ReLU()

    def forward(self, x):
        top = x = self.relu(x)
        for stage in self.stages:
            top = stage(top)
            x = x + top
        return x


class correct_separable_pooling_collects_a_list(_Convs):
    def forward(self, x):
        outputs = [torch.relu(x)]
        for conv in self.convs:
            pooled = F.max_pool2d(outputs[-1], (5, 1), stride=1, padding=(2, 0))
            pooled = F.max_pool2d(pooled, (1, 5), stride=1, padding=(0, 2))
            outputs.append(conv(pooled))
        return torch.stack(outputs).sum(0)


class correct_recursive(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(channels, channels, 3, 1, 1)
                                     for _ in range(num_blocks)])

    def chain(self, path, i):
        if i == len(self.layers):
            return 0
        path = self.layers[i](F.max_pool2d(path, kernel_size=5, stride=1, padding=2))
        return path + self.chain(path, i + 1)

    def forward(self, x):
        x = x.clamp(min=0)
        return x + self.chain(x, 0)


class correct_pool_module_created_after_convs(_Convs):
    def __init__(self, channels, num_blocks=4):
        super().__init__(channels, num_blocks)
        self.pool = nn.MaxPool2d(kernel_size=5, stride=1, padding=2)

    def forward(self, x):
        x = F.relu(x)
        result, path = x.clone(), x
        for conv in self.convs:
            path = conv(self.pool(path))
            result += path  # in place on a copy of its own: fine
        return result


# -- wrong -----------------------------------------------------------------------------------
class wrong_parallel(_Convs):
    EXPECTED = r"in parallel on the input; CRP is a CHAIN"

    def forward(self, x):
        x = F.relu(x)
        return x + sum(conv(_pool(x)) for conv in self.convs)


class wrong_last_block_only(_Convs):
    EXPECTED = r"only the last block's output is added"

    def forward(self, x):
        x = F.relu(x)
        path = x
        for conv in self.convs:
            path = conv(_pool(path))
        return x + path


class wrong_returns_the_chain_end(_Convs):
    EXPECTED = r"only the last block's output is returned"

    def forward(self, x):
        path = F.relu(x)
        for conv in self.convs:
            path = conv(_pool(path))
        return path


class wrong_input_missing_from_the_sum(_Convs):
    EXPECTED = r"input itself is missing from the sum"

    def forward(self, x):
        path, out = F.relu(x), 0
        for conv in self.convs:
            path = conv(_pool(path))
            out = out + path
        return out


class wrong_no_relu(_Convs):
    EXPECTED = r"leading ReLU is missing"

    def forward(self, x):
        out = path = x
        for conv in self.convs:
            path = conv(_pool(path))
            out = out + path
        return out


class wrong_conv_before_pool(_Convs):
    EXPECTED = r"convolves before it pools"

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = _pool(conv(path))
            out = out + path
        return out


class wrong_three_by_three_pooling(_Convs):
    EXPECTED = r"max pooling has a 3x3 window"

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(F.max_pool2d(path, 3, stride=1, padding=1))
            out = out + path
        return out


class wrong_average_pooling(_Convs):
    EXPECTED = r"uses average pooling"

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(F.avg_pool2d(path, 5, stride=1, padding=2))
            out = out + path
        return out


class wrong_pooling_with_stride(_Convs):
    EXPECTED = r"its pooling turns \d+x\d+ into \d+x\d+"

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(nn.functional.max_pool2d(path, 5, padding=2))  # stride defaults to 5
            out = out + path
        return out


class wrong_four_blocks_hard_coded(nn.Module):
    EXPECTED = r"it has 4 nn.Conv2d layers; rnlib's has [123]\b.*\n.*\nHint: one convolution per pooling block: num_blocks=[123]"

    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                                   for _ in range(4))

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(_pool(path))
            out = out + path
        return out


class wrong_one_shared_conv(nn.Module):
    EXPECTED = r"'conv' is applied \d times.*\n.*\nHint: each pooling block has a convolution of its own"

    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.num_blocks = num_blocks
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for _ in range(self.num_blocks):
            path = self.conv(_pool(path))
            out = out + path
        return out


class wrong_plain_list(nn.Module):
    EXPECTED = r"plain Python list"

    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = [nn.Conv2d(channels, channels, 3, padding=1, bias=False)
                      for _ in range(num_blocks)]

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(_pool(path))
            out = out + path
        return out


class wrong_inplace_relu_on_the_input(_Convs):
    EXPECTED = r"changes its input in place"

    def forward(self, x):
        x = F.relu(x, inplace=True)
        out = path = x
        for conv in self.convs:
            path = conv(_pool(path))
            out = out + path
        return out


class wrong_inplace_sum_breaks_backward(_Convs):
    EXPECTED = r"backward fails: a tensor that autograd saved was changed in place"

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(_pool(path))
            out += path  # out is x: the ReLU's output, which backward needs, changes in place
        return out


class wrong_never_pools(_Convs):
    EXPECTED = r"it never pools"

    def forward(self, x):
        x = F.relu(x)
        out = path = x
        for conv in self.convs:
            path = conv(path)
            out = out + path
        return out


def _chain(convs, start, pool):
    """start plus each block's output, each block pooling then convolving the previous one's."""
    out = path = start
    for conv in convs:
        path = conv(pool(path))
        out = out + path
    return out


# -- explicit padding ------------------------------------------------------------------------
class correct_minus_infinity_padding_then_unpadded_pooling(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.convs = nn.ModuleList(nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(channels, channels, 3))
                                   for _ in range(num_blocks))

    def forward(self, x):
        out = path = F.relu(x)
        for conv in self.convs:
            path = conv(F.max_pool2d(F.pad(path, (2, 2, 2, 2), value=float("-inf")), 5, 1))
            out = out + path
        return out


class wrong_relu6(_Convs):
    EXPECTED = r"it clamps at an upper bound \(ReLU6 or hardtanh\)"

    def forward(self, x):
        return _chain(self.convs, nn.ReLU6()(x), _pool)


class wrong_zero_padding_before_the_pooling(_Convs):
    EXPECTED = r"its output differs from rnlib's"

    def forward(self, x):  # zeros beat negative values at the border
        return _chain(self.convs, F.relu(x), lambda p: F.max_pool2d(F.pad(p, (2, 2, 2, 2)), 5, 1))


# -- rnlib's own pooling ---------------------------------------------------------------------
class library_subclass_with_its_own_forward(blocks.ChainedResidualPooling):
    def forward(self, x):
        return _chain(self.convs, F.relu(x), _pool)


class library_wrapper(nn.Module):
    def __init__(self, channels, num_blocks=4):
        super().__init__()
        self.crp = blocks.ChainedResidualPooling(channels, num_blocks)

    def forward(self, x):
        return self.crp(x)
