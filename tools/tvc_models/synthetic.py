"""Synthetic camera-like images for the mask classifier: textured background, a face ellipse,
and either a mask band over the lower face, a bare mouth, or no face at all."""

from __future__ import annotations

import numpy as np

CLASSES = ("mask", "no_mask", "no_face")


def mask_images(n: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n images NCHW float32 in [-1, 1] (the model's normalization) and their labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((n, 3, size, size), np.float32)
    labels = rng.integers(0, 3, n)
    for k in range(n):
        f1, f2 = rng.uniform(2, 9, 2)
        bg = 0.5 + 0.25 * np.sin(f1 * xx * 6.28 + rng.uniform(0, 6.28)) * np.cos(f2 * yy * 6.28)
        img = np.stack([bg * c for c in rng.uniform(0.4, 1.0, 3)])
        if labels[k] != 2:
            cx, cy = rng.uniform(0.35, 0.65, 2)
            rx, ry = rng.uniform(0.18, 0.28), rng.uniform(0.25, 0.35)
            face = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
            skin = rng.uniform(0.5, 0.95) * np.array([1.0, 0.8, 0.65])
            img[:, face] = skin[:, None]
            if labels[k] == 0:
                band = face & (yy > cy + 0.02)
                img[:, band] = rng.uniform(0.1, 1.0, 3)[:, None]
            else:
                mouth = (np.abs(xx - cx) < rx * 0.4) & (np.abs(yy - (cy + ry * 0.5)) < 0.03)
                img[:, mouth] = np.array([0.6, 0.1, 0.1])[:, None]
        img += rng.normal(0, 0.03, img.shape)
        images[k] = np.clip(img, 0, 1) * 2 - 1
    return images, labels
