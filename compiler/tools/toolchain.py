"""Finding the cross compiler and the emulator; flags per board."""

from __future__ import annotations

import shutil

from compiler.errors import ToolchainError

INSTALL = (
    "sudo apt-get install --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi "
    "qemu-system-arm (or ./setup.sh)"
)


def arm_gcc() -> str:
    cc = shutil.which("arm-none-eabi-gcc")
    if cc is None:
        raise ToolchainError("arm-none-eabi-gcc not found", INSTALL)
    return cc


def qemu() -> str:
    q = shutil.which("qemu-system-arm")
    if q is None:
        raise ToolchainError("qemu-system-arm not found", INSTALL)
    return q
