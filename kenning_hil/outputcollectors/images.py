"""ClassificationImageCollector: saves each input image with the predicted class (and the
true one, when known) drawn on it, as PNG files, for a lab demo or a look at the errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kenning_hil.core.errors import ConfigurationError, import_optional, os_reason
from kenning_hil.core.outputcollector import OutputCollector


def to_image_array(data: Any, width: int | None) -> np.ndarray:
    """A model input (a batch of one: [1, H, W, C], [1, H, W] or flat [1, N] with `width`)
    as uint8 pixels [H, W] or [H, W, 3], scaled to 0..255 from its own range."""
    array = np.asarray(data[0] if isinstance(data, (list, tuple)) else data, dtype=np.float32)
    array = array.reshape(array.shape[1:]) if array.ndim > 1 and array.shape[0] == 1 else array
    if array.ndim == 1:
        side = width or int(round(np.sqrt(array.size)))
        if array.size % side:
            raise ConfigurationError(
                f"cannot draw an input of {array.size} values as an image {side} pixels wide "
                "(set 'width')")
        array = array.reshape(-1, side)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    low, high = float(array.min()), float(array.max())
    scaled = (array - low) / (high - low) * 255 if high > low else np.zeros_like(array)
    return scaled.astype(np.uint8)


class ClassificationImageCollector(OutputCollector):
    """Writes `<directory>/<sample>-<class>.png`: the input, enlarged to `size` pixels, with
    the class drawn on it (green when it matches the label, red when not)."""

    arguments_structure = {
        "directory": {"description": "Folder the images are written to", "type": Path,
                      "required": True},
        "size": {"description": "Width of the saved image in pixels", "type": int,
                 "default": 128},
        "width": {"description": "Width of the input image for flat inputs (default: "
                  "square)", "type": int, "nullable": True, "default": None},
        "class_names": {"description": "Names of the classes, by id (default: the ids)",
                        "type": str, "is_list": True, "nullable": True, "default": None},
        "limit": {"description": "Save at most this many images", "type": int,
                  "nullable": True, "default": None},
    }
    required_inputs = ("model_output", "input")

    def __init__(
        self,
        inputs_sources: dict | None = None,
        inputs_specs: dict | None = None,
        outputs: dict | None = None,
        directory: Path | None = None,
        size: int = 128,
        width: int | None = None,
        class_names: list[str] | None = None,
        limit: int | None = None,
    ):
        super().__init__(inputs_sources, inputs_specs, outputs)
        self.directory = Path(directory)
        self.size, self.width, self.limit = size, width, limit
        self.class_names = class_names
        self.saved: list[Path] = []
        self._image = None

    def prepare(self) -> None:
        self._image = import_optional("PIL.Image", "images", "drawing classification results")
        self._draw = import_optional("PIL.ImageDraw", "images", "drawing classification results")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the image folder {self.directory}: {os_reason(exc)}") from None

    def name_of(self, class_id: int | None) -> str:
        if class_id is None:
            return "?"
        if self.class_names and 0 <= class_id < len(self.class_names):
            return self.class_names[class_id]
        return str(class_id)

    def process_output(self, input_data: Any, output_data: Any) -> None:
        if self.limit is not None and len(self.saved) >= self.limit:
            return
        pixels = to_image_array(input_data, self.width)
        image = self._image.fromarray(pixels).convert("RGB")
        height = max(1, round(self.size * image.height / image.width))
        image = image.resize((self.size, height), self._image.NEAREST)
        text = self.name_of(self.last_class)
        colour = (255, 255, 0)
        if self.last_label is not None:
            colour = (0, 200, 0) if self.last_label == self.last_class else (230, 0, 0)
            if self.last_label != self.last_class:
                text += f" (true {self.name_of(self.last_label)})"
        draw = self._draw.Draw(image)
        draw.rectangle((0, 0, self.size, 12), fill=(0, 0, 0))
        draw.text((2, 1), text, fill=colour)
        path = self.directory / f"{self.processed:06d}-{self.name_of(self.last_class)}.png"
        try:
            image.save(path)
        except OSError as exc:
            raise ConfigurationError(f"cannot write {path}: {os_reason(exc)}") from None
        self.saved.append(path)

    def detach_from_output(self) -> None:
        self._image = None
