"""Quality tiers: output frame size, frame rate and JPEG quality (prices: ``domain.billing``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    width: int
    height: int
    fps: int
    jpeg_quality: int

    @property
    def samples_per_frame(self) -> int:
        return 16_000 // self.fps


TIERS: dict[str, Tier] = {
    "mock": Tier("mock", 256, 256, 25, 75),  # bills as standard
    "lite": Tier("lite", 256, 256, 25, 75),
    "standard": Tier("standard", 512, 512, 25, 80),
    "pro": Tier("pro", 1280, 720, 30, 85),
}
