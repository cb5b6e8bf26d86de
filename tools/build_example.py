"""Build the bundled example: a small mask classifier (depthwise-separable CNN, 64x64 RGB,
3 classes), trained briefly on synthetic images so its activations look like a real model's.

Deterministic: fixed seeds, one thread. Writes examples/mask_cnn.onnx, examples/mask_sample.npy
and 32 calibration + 32 validation images as JPEG (examples/mask_calib/, examples/mask_val/), the
way camera captures reach a user (normalize with --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5).
Run: .venv/bin/python tools/build_example.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tvc_models.export import export  # noqa: E402
from tvc_models.synthetic import mask_images  # noqa: E402
from tvc_models.zoo import conv_bn  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "examples"


class MaskCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        chans = [(8, 16, 2), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 2)]
        layers: list[nn.Module] = [conv_bn(3, 8, 3, 2)]
        for cin, cout, s in chans:
            layers += [
                conv_bn(cin, cin, 3, s, groups=cin, act="relu6"),
                conv_bn(cin, cout, 1, act="relu6"),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))


def save_images(folder: Path, images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        rgb = np.round((img.transpose(1, 2, 0) + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:03d}.jpg", quality=90)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = mask_images(1536, seed=1)
    model = MaskCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _epoch in range(6):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    xv, yv = mask_images(256, seed=2)
    with torch.no_grad():
        acc = (model(torch.from_numpy(xv)).argmax(1).numpy() == yv).mean()
    print(f"validation accuracy on synthetic images: {acc:.3f} (loss {loss.item():.3f})")
    OUT.mkdir(exist_ok=True)
    export(model, (1, 3, 64, 64), OUT / "mask_cnn.onnx", "torchscript")
    np.save(OUT / "mask_sample.npy", xv[:1])
    for folder, seed in (("mask_calib", 3), ("mask_val", 4)):
        save_images(OUT / folder, mask_images(32, seed=seed)[0])
    print(f"wrote {OUT / 'mask_cnn.onnx'} ({(OUT / 'mask_cnn.onnx').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
