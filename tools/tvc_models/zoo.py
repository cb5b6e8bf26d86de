"""PyTorch definitions of the model families our users deploy, at test-friendly widths.

Every builder seeds torch and randomizes BatchNorm statistics so folding is really exercised.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def conv_bn(
    cin: int, cout: int, k: int = 3, s: int = 1, groups: int = 1, act: str = "relu"
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act == "relu":
        layers.append(nn.ReLU(inplace=True))
    elif act == "relu6":
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.a = conv_bn(c, c)
        self.b = conv_bn(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class ResNet9(nn.Module):
    """Myrtle-style ResNet-9 at 64x64. `head="pool"`: global pool + Linear;
    `head="flatten"`: a 64x4x4 map flattened straight into Linear."""

    def __init__(
        self,
        widths: tuple[int, int, int, int] = (16, 32, 64, 64),
        classes: int = 10,
        head: str = "pool",
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.prep = conv_bn(3, w0)
        self.layer1 = nn.Sequential(conv_bn(w0, w1), nn.MaxPool2d(2), Residual(w1))
        self.layer2 = nn.Sequential(conv_bn(w1, w2), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(conv_bn(w2, w3), nn.MaxPool2d(2), Residual(w3))
        self.head = head
        if head == "pool":
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(w3, classes)
        else:
            self.pool = nn.MaxPool2d(2)  # 8x8 -> 4x4
            self.drop = nn.Dropout(0.2)
            self.fc = nn.Linear(w3 * 16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        x = self.pool(x)
        if self.head == "pool":
            return self.fc(torch.flatten(x, 1))
        return self.fc(self.drop(x.view(x.size(0), -1)))


class MobileNetV1(nn.Module):
    """MobileNetV1 with width multiplier alpha (0.25 for our users' 64x64 classifiers), ReLU6."""

    CFG = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ]

    def __init__(self, alpha: float = 0.25, classes: int = 3) -> None:
        super().__init__()
        c = int(32 * alpha)
        layers: list[nn.Module] = [conv_bn(3, c, 3, 2, act="relu6")]
        for cout, s in self.CFG:
            cout = int(cout * alpha)
            layers += [conv_bn(c, c, 3, s, groups=c, act="relu6"), conv_bn(c, cout, 1, act="relu6")]
            c = cout
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()  # dynamic-batch export leaves Shape/Gather glue around this
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        half = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                conv_bn(cin, cin, 3, stride, groups=cin, act="none"), conv_bn(cin, half, 1)
            )
        inp = cin if stride > 1 else half
        self.branch2 = nn.Sequential(
            conv_bn(inp, half, 1),
            conv_bn(half, half, 3, stride, groups=half, act="none"),
            conv_bn(half, half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, widths: tuple[int, int, int] = (24, 48, 96), classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        blocks: list[nn.Module] = []
        c = widths[0]
        for w in widths[1:]:
            blocks += [ShuffleBlock(c, w, 2), ShuffleBlock(w, w, 1), ShuffleBlock(w, w, 1)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.conv5 = conv_bn(c, 128, 1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv5(self.blocks(self.stem(x)))
        return self.fc(x.mean([2, 3]))


class TwoHeadDetector(nn.Module):
    """SSD-style: two feature scales, each head predicts 4 box offsets + 2 class scores per
    anchor; heads are permuted to NHWC, flattened per anchor and concatenated."""

    def __init__(self, anchors: int = 2) -> None:
        super().__init__()
        self.anchors = anchors
        self.stage1 = nn.Sequential(
            conv_bn(3, 8, 3, 2), conv_bn(8, 16, 3, 2), conv_bn(16, 16, 3, 2)
        )
        self.stage2 = nn.Sequential(conv_bn(16, 32, 3, 2, act="relu6"), nn.Hardswish())
        self.loc1 = nn.Conv2d(16, anchors * 4, 3, padding=1)
        self.conf1 = nn.Conv2d(16, anchors * 2, 3, padding=1)
        self.loc2 = nn.Conv2d(32, anchors * 4, 1)
        self.conf2 = nn.Conv2d(32, anchors * 2, 1)

    def _head(self, conv: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
        y = conv(x).permute(0, 2, 3, 1).contiguous()
        return y.view(y.size(0), -1, k)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        loc = torch.cat([self._head(self.loc1, f1, 4), self._head(self.loc2, f2, 4)], dim=1)
        conf = torch.cat([self._head(self.conf1, f1, 2), self._head(self.conf2, f2, 2)], dim=1)
        return loc, F.softmax(conf, dim=-1)


class FpnDetector(nn.Module):
    """Feature-pyramid head: the coarse map is upsampled (nearest, x2) and added to the fine
    one, as face detectors with a top-down path do."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Sequential(conv_bn(3, 8, 3, 2), conv_bn(8, 16, 3, 2))
        self.c2 = conv_bn(16, 16, 3, 2)
        self.lat = nn.Conv2d(16, 16, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.head = nn.Conv2d(16, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.c1(x)
        f2 = self.c2(f1)
        return self.head(F.relu(self.lat(f1) + self.up(f2)))


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    """A named test model (eval mode, seeded) and its NCHW input shape."""
    torch.manual_seed(seed)
    models = {
        "resnet9": (lambda: ResNet9(head="pool"), (1, 3, 64, 64)),
        "resnet9_flatten": (lambda: ResNet9(head="flatten"), (1, 3, 64, 64)),
        "mobilenet_v1_025": (lambda: MobileNetV1(0.25), (1, 3, 64, 64)),
        "shufflenet_v2": (lambda: ShuffleNetV2(), (1, 3, 64, 64)),
        "detector": (lambda: TwoHeadDetector(), (1, 3, 64, 64)),
        "fpn_detector": (lambda: FpnDetector(), (1, 3, 64, 64)),
    }
    make, shape = models[name]
    return _randomize_bn(make(), seed), shape


MODEL_NAMES = ("resnet9", "resnet9_flatten", "mobilenet_v1_025", "shufflenet_v2", "detector")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.a = conv_bn(cin, cout, 3, stride)
        self.b = conv_bn(cout, cout, 3, act="none")
        needs_proj = stride != 1 or cin != cout
        self.skip = conv_bn(cin, cout, 1, stride, act="none") if needs_proj else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.b(self.a(x)) + self.skip(x))


class ResNet18(nn.Module):
    """ResNet-18 at 224x224: the model that does not fit a 192 KB microcontroller."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        c = 64
        for w, s in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(c, w, s), BasicBlock(w, w, 1)]
            c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1), 1))
