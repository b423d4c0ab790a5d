"""Pure-PyTorch Shift-GCN: the two shifts against hand-made cases, shapes, and that it learns."""
from __future__ import annotations

import torch

from posebridge.stages.train.encoders.shift_gcn import ShiftGCN, ShiftGCNLayer, spatial_shift_index, temporal_shift


def test_spatial_shift_moves_channel_j_by_j_joints_and_back():
    v, c = 5, 3
    # value = 10 * joint + channel, laid out [V*C] as the layer flattens it
    x = (10 * torch.arange(v).view(-1, 1) + torch.arange(c).view(1, -1)).flatten().float()
    shifted = x[spatial_shift_index(v, c, +1)].view(v, c)
    for i in range(v):
        for j in range(c):
            assert shifted[i, j] == 10 * ((i + j) % v) + j  # joint i, channel j reads joint i + j
    back = shifted.flatten()[spatial_shift_index(v, c, -1)].view(v, c)
    assert torch.equal(back, x.view(v, c))  # the out-shift undoes the in-shift


def test_temporal_shift_integer_fractional_padding_and_stride():
    t = torch.arange(1.0, 7.0)  # frames 1..6
    x = torch.stack([t, t, t]).view(1, 3, 6, 1)  # three channels, one joint
    out = temporal_shift(x, torch.tensor([1.0, -2.0, 0.5]))[0, :, :, 0]
    assert torch.equal(out[0], torch.tensor([2.0, 3, 4, 5, 6, 0]))  # reads t + 1, zero past the end
    assert torch.equal(out[1], torch.tensor([0.0, 0, 1, 2, 3, 4]))  # reads t - 2, zero before the start
    assert torch.allclose(out[2], torch.tensor([1.5, 2.5, 3.5, 4.5, 5.5, 3.0]))  # halfway: mean of t, t + 1
    # stride 2 samples frames 0, 2, 4 and adds half a frame (as the reference does when striding)
    strided = temporal_shift(x, torch.tensor([0.0, 1.0, -0.5]), stride=2)[0, :, :, 0]
    assert torch.allclose(strided[0], torch.tensor([1.5, 3.5, 5.5]))
    assert torch.allclose(strided[1], torch.tensor([2.5, 4.5, 3.0]))
    assert torch.allclose(strided[2], torch.tensor([1.0, 3.0, 5.0]))


def test_temporal_shift_offset_is_learnable():
    x = torch.arange(8.0).view(1, 1, 8, 1)
    shift = torch.tensor([0.25], requires_grad=True)
    temporal_shift(x, shift)[0, 0, 2:5, 0].sum().backward()
    assert shift.grad is not None and float(shift.grad) == 3.0  # d/ds of (t + s) summed over 3 frames


def test_layer_mixes_joints_only_through_the_shift():
    torch.manual_seed(0)
    layer = ShiftGCNLayer(4, 4, num_joints=6).eval()
    with torch.no_grad():
        layer.weight.abs_()  # positive weights and inputs keep the final ReLU open everywhere
    x = torch.rand(1, 4, 2, 6) + 1.0
    moved = x.clone()
    moved[:, 0, :, 0] += 1.0  # channel 0 of joint 0: read only by joint 0 (channel 0 is not shifted)
    diff = (layer(moved) - layer(x)).abs().sum(dim=(0, 2))  # [C_out, V]
    # the linear map spreads it over joint 0's 4 channels; the out-shift sends channel j of joint 0
    # to output joint j (output (i, j) reads (i - j) mod V): joints 0..3 change, 4 and 5 do not
    reached = {int(v) for v in torch.nonzero(diff.sum(0) > 0).flatten()}
    assert reached == {0, 1, 2, 3}


def test_shift_gcn_shapes_and_a_few_steps_fit_two_classes():
    torch.manual_seed(0)
    model = ShiftGCN(num_joints=17, num_classes=2, width=8)
    x = torch.randn(8, 16, 17, 3)
    assert model.features(x).shape == (8, 32, 4, 17)  # 4w channels, T / 4
    y = torch.tensor([0, 1] * 4)
    x = x + y.view(-1, 1, 1, 1) * 1.5  # class 1 is displaced: learnable
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first = None
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.5 * first


def test_temporal_shift_far_offsets_take_the_gather_path_with_the_same_values():
    """Offsets past MAX_CONV_PAD frames are read by index (the convolution's kernel would grow with
    them); both paths are the same function."""
    from posebridge.stages.train.encoders import shift_gcn

    torch.manual_seed(0)
    x = torch.randn(2, 3, 40, 4, dtype=torch.float64)
    near = torch.tensor([0.3, -1.7, 2.5], dtype=torch.float64)
    far = near + torch.tensor([0.0, 0.0, 20.0], dtype=torch.float64)  # one channel 22.5 frames away
    for shift in (near, far):
        for stride in (1, 2):
            low = torch.floor(shift + (0.5 if stride > 1 else 0.0))
            pad = int(low.abs().max().item()) + 2
            s = shift + (0.5 if stride > 1 else 0.0)
            conv = shift_gcn._conv_shift(x, s, low, pad, stride)
            gather = shift_gcn._gather_shift(x, s, low, pad, stride)
            assert torch.allclose(conv, gather, atol=1e-12)
            assert torch.allclose(temporal_shift(x, shift, stride), gather, atol=1e-12)
    assert int(torch.floor(far).abs().max()) + 2 > shift_gcn.MAX_CONV_PAD  # the far case really takes the gather path


def test_strided_residual_is_the_reference_strided_conv():
    """The stride-2 unit's residual reads every second frame then a 1x1 conv: Conv2d(stride=(2, 1))'s values."""
    from posebridge.stages.train.encoders.shift_gcn import ShiftUnit

    torch.manual_seed(0)
    unit = ShiftUnit(4, 8, 5, stride=2).double().eval()  # float64: the two orders of summation agree far below 1e-9
    x = torch.randn(2, 4, 9, 5, dtype=torch.float64)
    conv, bn = unit.residual
    expected = bn(torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride=(2, 1)))
    assert torch.allclose(unit.residual(x[:, :, ::2]), expected, atol=1e-9)


def test_narrow_network_backward_finishes_in_a_fresh_process():
    """Width 4 (fewer than 8 channels) on a batch of 64 x 64 frames: oneDNN's strided 1x1 convolution hung or
    crashed in this backward on the channels-last input the network carries (torch 2.13 CPU); in a child
    process so that a regression fails this test instead of stalling the suite."""
    import subprocess
    import sys

    code = ("import torch\n"
            "from posebridge.stages.train.encoders.shift_gcn import ShiftGCN\n"
            "for seed in range(3):\n"
            "    torch.manual_seed(seed)\n"
            "    ShiftGCN(33, 27, 4)(torch.randn(64, 64, 33, 3)).sum().backward()\n"
            "print('done')\n")
    try:
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise AssertionError("a width-4 Shift-GCN backward did not finish in 120 s") from None
    assert child.returncode == 0 and child.stdout.strip() == "done", child.stderr[-2000:]
