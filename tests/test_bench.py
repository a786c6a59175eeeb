"""Cost measurement: counted FLOPs against hand arithmetic, memory that grows with the input."""

import pytest
import torch
from torch import nn

from rnlib.bench import Cost, count_flops, count_parameters, format_table, peak_memory


class OneConv(nn.Module):
    in_channels = 3

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(x)


def test_flops_are_two_per_multiply_accumulate():
    macs = 8 * 3 * 3 * 3 * 10 * 12  # out_channels * in_channels * k * k * H * W
    assert count_flops(OneConv(), (10, 12)) == 2 * macs


def test_parameters_can_exclude_frozen_ones():
    model = OneConv()
    assert count_parameters(model) == 8 * 3 * 9
    model.conv.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 0


def test_peak_memory_grows_with_the_input():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    model.in_channels = 3
    small = peak_memory(model, (32, 32))
    large = peak_memory(model, (128, 128))
    one_map_mib = 16 * 128 * 128 * 4 / 2**20  # one float32 activation of the large input
    assert small > 0
    assert large >= 2 * one_map_mib  # conv output and ReLU output are alive together
    assert large > 3 * small


def test_training_pass_needs_more_memory_than_inference():
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    model.in_channels = 3
    assert peak_memory(model, (64, 64), train=True) > peak_memory(model, (64, 64))


def test_table_gives_ratios_to_the_reference():
    rows = [Cost("a", 1.0, 2.0, 1.0, latency_ms=50.0), Cost("b", 2.0, 4.0, 2.0, latency_ms=100.0)]
    table = format_table(rows, reference="a")
    assert "latency / a" in table and "| 2.00x |" in table and "| 1.00x |" in table


def test_train_step_and_ceiling_are_measured():
    from rnlib.bench import conv_ceiling, measure_train_step

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    model.in_channels, model.num_classes = 3, 4
    before = model[0].weight.detach().clone()
    assert measure_train_step(model, (16, 16), 2, repeats=1) > 0
    assert not torch.equal(model[0].weight, before), "a training step updates the weights"
    assert conv_ceiling(repeats=1) > 1  # GFLOP/s


def test_measurements_leave_the_models_mode_and_memory_format():
    from rnlib.bench import measure_latency, measure_train_step

    model = OneConv().train()
    measure_latency(model, (8, 8), repeats=1, channels_last=True)
    assert model.training and model.conv.weight.is_contiguous()
    model.eval().to(memory_format=torch.channels_last)
    model.num_classes = 8
    measure_train_step(model, (8, 8), repeats=1, channels_last=True)
    peak_memory(model, (8, 8), train=True, channels_last=True)
    assert not model.training
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_train_steps_alternate_their_formats_and_drop_the_warm_up(monkeypatch):
    from rnlib import bench

    calls = []

    def timed(model, size, batch, *, repeats, warmup, channels_last, amp_dtype):
        calls.append(amp_dtype)
        return 1000.0 if len(calls) <= 2 else float(len(calls))  # the warm-up round is slow

    monkeypatch.setattr(bench, "measure_train_step", timed)
    model = OneConv().eval()
    medians = bench.alternate_train_steps(model, (8, 8), 2, repeats=3)
    assert calls == [None, torch.bfloat16] * 4
    assert medians == {None: 5.0, torch.bfloat16: 6.0}  # rounds 2-4: (3, 5, 7) and (4, 6, 8)
    assert model.training
    with pytest.raises(ValueError, match="repeats must be 1 or more"):
        bench.alternate_train_steps(model, (8, 8), 2, repeats=0)
