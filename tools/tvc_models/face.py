"""An RNNPool_Face_M4-like face detector, trained briefly on synthetic faces.

QVGA monochrome in (1x240x320), conv 3x3/2 → 4 channels, RNNPool 8x8/4 (h1 = h2 = 16) → 64 x 29
x 39, four MBConv (inverted bottleneck) blocks, two SSD-style heads (15x20 and 8x10 cells, two
anchors each) predicting 4 box offsets and 2 class scores per anchor. The faces are ellipses with
eyes and a mouth on textured backgrounds, with faceless distractors, so that the activations the
compiler calibrates on look like a trained detector's, not like random weights'.

    python tools/tvc_models/face.py --out build/face-model  # face.onnx, calib and val images
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from compiler.frontend.torch import RNNPool, export_onnx  # noqa: E402

H, W = 240, 320
HEADS = (  # (feature map, anchor sizes in pixels)
    ((15, 20), (32.0, 60.0)),
    ((8, 10), (100.0, 160.0)),
)
OUTPUTS = ["loc1", "conf1", "loc2", "conf2"]


# --- data ---------------------------------------------------------------------------------------


def face_images(n: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """n images (N, 1, 240, 320) float32 in [-1, 1], and per image its face boxes (K, 4) as
    x0, y0, x1, y1 in pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    images = np.empty((n, 1, H, W), np.float32)
    boxes = []
    for k in range(n):
        f = rng.uniform(0.01, 0.08, 4)
        img = 0.5 + 0.2 * np.sin(f[0] * xx + rng.uniform(0, 6.3)) * np.cos(f[1] * yy)
        img += 0.1 * np.sin(f[2] * (xx + yy) + rng.uniform(0, 6.3))
        for _ in range(rng.integers(1, 4)):  # distractors: blobs and bars without a face
            cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(10, 60)
            if rng.random() < 0.5:
                img[((xx - cx) ** 2 + (yy - cy) ** 2) < r * r] = rng.uniform(0, 1)
            else:
                img[(np.abs(xx - cx) < r) & (np.abs(yy - cy) < r / 4)] = rng.uniform(0, 1)
        found = []
        for _ in range(rng.integers(0, 4)):
            fh = rng.uniform(28, 150)
            fw = fh * rng.uniform(0.7, 0.85)
            cx, cy = rng.uniform(fw / 2, W - fw / 2), rng.uniform(fh / 2, H - fh / 2)
            box = np.array([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2])
            if any(_iou(box[None], b[None])[0, 0] > 0.1 for b in found):
                continue
            skin, dark = rng.uniform(0.55, 0.95), rng.uniform(0.0, 0.25)
            img[((xx - cx) / (fw / 2)) ** 2 + ((yy - cy) / (fh / 2)) ** 2 < 1] = skin
            for ex in (-0.2, 0.2):  # eyes
                eye = ((xx - cx - ex * fw) / (0.09 * fw)) ** 2 + (
                    (yy - cy + 0.12 * fh) / (0.05 * fh)
                ) ** 2
                img[eye < 1] = dark
            mouth = (np.abs(xx - cx) < 0.18 * fw) & (np.abs(yy - cy - 0.22 * fh) < 0.03 * fh)
            img[mouth] = dark
            found.append(box)
        img += rng.normal(0, 0.04, img.shape)
        images[k, 0] = np.clip(img, 0, 1) * 2 - 1
        boxes.append(np.array(found, np.float32).reshape(-1, 4))
    return images, boxes


def anchors() -> np.ndarray:
    """(A, 4) anchor boxes x0, y0, x1, y1 in the order the heads' outputs flatten to."""
    out = []
    for (fh, fw), sizes in HEADS:
        ys, xs = (np.arange(fh) + 0.5) * H / fh, (np.arange(fw) + 0.5) * W / fw
        for cy in ys:
            for cx in xs:
                for s in sizes:
                    out.append([cx - 0.4 * s, cy - 0.5 * s, cx + 0.4 * s, cy + 0.5 * s])
    return np.array(out, np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def targets(boxes: list[np.ndarray], anc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image and anchor: label (1 face, 0 background) and encoded box offsets."""
    labels = np.zeros((len(boxes), len(anc)), np.int64)
    offsets = np.zeros((len(boxes), len(anc), 4), np.float32)
    aw, ah = anc[:, 2] - anc[:, 0], anc[:, 3] - anc[:, 1]
    acx, acy = anc[:, 0] + aw / 2, anc[:, 1] + ah / 2
    for k, b in enumerate(boxes):
        if not len(b):
            continue
        iou = _iou(anc, b)
        best = iou.argmax(axis=1)
        pos = iou.max(axis=1) >= 0.35
        pos[iou.argmax(axis=0)] = True
        best[iou.argmax(axis=0)] = np.arange(len(b))
        g = b[best]
        gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
        labels[k] = pos
        offsets[k] = np.stack(
            [(g[:, 0] + gw / 2 - acx) / aw, (g[:, 1] + gh / 2 - acy) / ah,
             np.log(gw / aw), np.log(gh / ah)], axis=1,
        )  # fmt: skip
    return labels, offsets


# --- model --------------------------------------------------------------------------------------


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand (skipped at ratio 1), 3x3 depthwise, 1x1 linear project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6()]
        layers += [
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class FaceDetector(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 4, 3, 2, 1), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = RNNPool(4, 8, 4, 16, 16)
        self.block1 = MBConv(64, 32, 2, 1)  # 29x39 → 15x20
        self.block2 = MBConv(32, 32, 1, 2)
        self.block3 = MBConv(32, 48, 2, 2)  # → 8x10
        self.block4 = MBConv(48, 48, 1, 2)
        self.loc1, self.conf1 = nn.Conv2d(32, 8, 3, 1, 1), nn.Conv2d(32, 4, 3, 1, 1)
        self.loc2, self.conf2 = nn.Conv2d(48, 8, 3, 1, 1), nn.Conv2d(48, 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f1 = self.block2(self.block1(self.pool(self.stem(x))))
        f2 = self.block4(self.block3(f1))
        return self.loc1(f1), self.conf1(f1), self.loc2(f2), self.conf2(f2)


class L2Norm(nn.Module):
    """S3FD's L2Norm as EdgeML's RNNPool face detectors write it: x / (||x||_2 + eps) * weight,
    the weight broadcast with expand_as (the exporter then writes Pow / ReduceSum / Sqrt / Add /
    Div / Mul around it)."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))
        self.eps = 1e-10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + self.eps
        x = torch.div(x, norm)
        return self.weight.unsqueeze(0).unsqueeze(2).unsqueeze(3).expand_as(x) * x


class S3FDFaceDetector(FaceDetector):
    """The detector with RNNPool_Face_M4's S3FD-style heads: the first feature map L2-normalized
    with a learned per-channel scale, and the first head's classes max-out: three background
    scores per anchor reduced by a maximum, concatenated with the face score."""

    def __init__(self) -> None:
        super().__init__()
        self.norm1 = L2Norm(32, 10.0)
        self.conf1 = nn.Conv2d(32, 4, 3, 1, 1)  # 3 background + 1 face, one anchor

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f1 = self.block2(self.block1(self.pool(self.stem(x))))
        f2 = self.block4(self.block3(f1))
        n1 = self.norm1(f1)
        c1 = self.conf1(n1)
        max_bg, _ = torch.max(c1[:, 0:3], dim=1, keepdim=True)
        return self.loc1(n1), torch.cat((max_bg, c1[:, 3:]), dim=1), self.loc2(f2), self.conf2(f2)


def flatten_heads(outs: list[np.ndarray] | tuple[torch.Tensor, ...]) -> tuple:
    """(loc (N, A, 4), conf (N, A, 2)) in anchors() order from the four NCHW head maps."""
    lib = torch if isinstance(outs[0], torch.Tensor) else np
    locs, confs = [], []
    for k in range(len(HEADS)):
        loc, conf = outs[2 * k], outs[2 * k + 1]
        n = loc.shape[0]
        locs.append(
            lib.reshape(
                loc.transpose(0, 2, 3, 1) if lib is np else loc.permute(0, 2, 3, 1), (n, -1, 4)
            )
        )
        confs.append(
            lib.reshape(
                conf.transpose(0, 2, 3, 1) if lib is np else conf.permute(0, 2, 3, 1), (n, -1, 2)
            )
        )
    cat = np.concatenate if lib is np else torch.cat
    return cat(locs, 1), cat(confs, 1)


def face_scores(outs: list[np.ndarray]) -> np.ndarray:
    """P(face) per anchor, (N, A)."""
    _, conf = flatten_heads(outs)
    return 1.0 / (1.0 + np.exp(conf[..., 0] - conf[..., 1]))


def sqnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    noise = float(np.sum((ref - got) ** 2))
    return float("inf") if noise == 0 else float(10 * np.log10(float(np.sum(ref**2)) / noise))


def face_margins(outs: list[np.ndarray]) -> np.ndarray:
    """Face minus background logit per anchor, (N, A): ranks like P(face), never saturates."""
    _, conf = flatten_heads(outs)
    return conf[..., 1] - conf[..., 0]


def top_anchors(outs: list[np.ndarray], k: int = 10, threshold: float = 0.5) -> list[list[int]]:
    """Per image: the (at most) k highest-scoring anchors whose P(face) exceeds the threshold."""
    margin = np.log(threshold / (1 - threshold))
    return [
        [int(a) for a in np.argsort(-m, kind="stable")[:k] if m[a] > margin]
        for m in face_margins(outs)
    ]


def agreement(float_outs: list[np.ndarray], int_outs: list[np.ndarray]) -> dict[str, object]:
    """How the compiled detector's class scores compare with the float model's (dequantized
    outputs, in OUTPUTS order, batched over images)."""
    conf = [OUTPUTS.index(c) for c in ("conf1", "conf2")]
    ref = np.concatenate([float_outs[i].ravel() for i in conf])
    got = np.concatenate([int_outs[i].ravel() for i in conf])
    top_f, top_q = top_anchors(float_outs), top_anchors(int_outs)
    return {
        "class_score_sqnr_db": round(sqnr_db(ref, got), 2),
        "top10_same": [sorted(a) == sorted(b) for a, b in zip(top_f, top_q, strict=True)],
        "anchors_above_threshold": [len(a) for a in top_f],
    }


def train(model: FaceDetector, steps: int, seed: int, log: bool = True) -> float:
    torch.manual_seed(seed)
    anc = anchors()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    loss_v = float("nan")
    t0 = time.time()
    for step in range(steps):
        x, boxes = face_images(8, seed=1000 + step)
        labels, offsets = targets(boxes, anc)
        loc, conf = flatten_heads(model(torch.from_numpy(x)))
        lab = torch.from_numpy(labels)
        ce = nn.functional.cross_entropy(conf.reshape(-1, 2), lab.reshape(-1), reduction="none")
        ce = ce.reshape(lab.shape)
        pos = lab == 1
        n_pos = max(int(pos.sum()), 1)
        neg_ce = ce.masked_fill(pos, 0)  # hard negatives, 3 per positive
        k = min(3 * n_pos, int((~pos).sum()))
        hard = neg_ce.reshape(-1).topk(k).values.sum()
        l_loc = nn.functional.smooth_l1_loss(
            loc[pos], torch.from_numpy(offsets)[pos], reduction="sum"
        )
        loss = (ce[pos].sum() + hard + l_loc) / n_pos
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_v = float(loss)
        if log and (step % 25 == 0 or step == steps - 1):
            print(f"  step {step:4d}  loss {loss_v:.3f}  ({time.time() - t0:.0f} s)", flush=True)
    return loss_v


def build(out: Path, steps: int = 200, seed: int = 0, log: bool = True) -> dict[str, Path]:
    """Train, export, and write calibration and validation images. Returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = FaceDetector()
    train(model, steps, seed, log)
    model.eval()
    onnx_path = export_onnx(model, torch.zeros(1, 1, H, W), out / "face.onnx", OUTPUTS)
    calib, _ = face_images(32, seed=77)
    val, _ = face_images(8, seed=78)
    np.save(out / "face_calib.npy", calib)
    np.save(out / "face_val.npy", val)
    torch.save(model.state_dict(), out / "face.pt")
    return {
        "onnx": onnx_path,
        "calib": out / "face_calib.npy",
        "val": out / "face_val.npy",
        "torch": out / "face.pt",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/face-model"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    paths = build(a.out, a.steps, a.seed)
    for k, v in paths.items():
        print(f"{k:6s} {v}")


if __name__ == "__main__":
    main()
