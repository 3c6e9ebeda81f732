"""What the fsl stage does to an episode's events, as one dataclass.

The owa_fsl builder config *is* an `FslSettings` (it inherits these fields), so a named config and a keyword
override in `load_dataset(...)` set the same fields. `validate()` names the field at fault.

The model family is never guessed: a named config (configs/fsl_*.yaml) names the tokenizer *and* its image
pattern; a custom setup must give both. (The reference picked the pattern from ``AutoConfig.model_type``,
treating every non-InternVL model as SmolVLM; a local tokenizer folder has no model config to read.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..events.settings import EventInputSettings
from .encoders import ENCODERS
from .tokenizer import IMAGE_PATTERNS, ImagePattern


@dataclass
class FslSettings(EventInputSettings):
    # The tokenizer: a Hub name or a local folder (its tokenizer.json; see fsl/tokenizer.py).
    tokenizer: str | None = None
    # How one screen image is spelled in tokens: a family of IMAGE_PATTERNS ("internvl", "smolvlm") or
    # {"prefix": str, "token": str, "length": int, "suffix": str}. The tokenizer must have the token.
    image_pattern: str | dict[str, Any] | None = None
    # Event encoder: "factorized", "hierarchical" or "json".
    encoder: str = "factorized"
    # Tokens per row; every row is padded to it. An event longer than this is dropped (and counted).
    max_length: int = 4096
    # Padding token; None: the tokenizer's pad token, else its eos token.
    pad_token: str | None = None
    # Keep rows without any image (upstream owa-data drops them; their events are then counted as dropped).
    include_rows_without_images: bool = False
    # At most this many images per row (None: as many as fit).
    max_images_per_row: int | None = None
    # Action events (of action_topics) are moved this much later (negative: earlier) before packing; the
    # events are reordered by the new times and encoded with them, so tokens and order agree.
    action_shift_ns: int = 0
    action_topics: list[str] = field(default_factory=lambda: ["keyboard", "mouse/raw"])
    # Store each row's text (the image pattern spelled out: most of the bytes of a dataset).
    store_texts: bool = True

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> FslSettings:
        """The settings of a named config, with field overrides (e.g. ``tokenizer=<local folder>``)."""
        from ..config_files import named_config, settings_fields

        config = named_config("owa_fsl", model)
        return cls(**{name: getattr(config, name) for name in settings_fields("owa_fsl")} | overrides)

    def resolved_image_pattern(self) -> ImagePattern:
        if isinstance(self.image_pattern, str):
            return IMAGE_PATTERNS[self.image_pattern]
        return ImagePattern(**self.image_pattern)

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value cannot work."""
        if not self.tokenizer:
            from .._registry import builder_class

            named = ", ".join(config.name for config in builder_class("owa_fsl").BUILDER_CONFIGS)
            raise ValueError(f"tokenizer: name a tokenizer (Hub name or local folder), or use a named config: {named}")
        self._validate_image_pattern()
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, not {self.encoder!r}")
        if not (type(self.max_length) is int and self.max_length > 0):
            raise ValueError(f"max_length must be a positive int, not {self.max_length!r}")
        if self.max_images_per_row is not None and not (
            type(self.max_images_per_row) is int and self.max_images_per_row > 0
        ):
            raise ValueError(f"max_images_per_row must be None or a positive int, not {self.max_images_per_row!r}")
        if type(self.action_shift_ns) is not int:
            raise ValueError(f"action_shift_ns must be an int (nanoseconds), not {self.action_shift_ns!r}")
        self.validate_event_input()

    def _validate_image_pattern(self) -> None:
        families = ", ".join(repr(name) for name in IMAGE_PATTERNS)
        if self.image_pattern is None:
            raise ValueError(
                f"image_pattern: name the image pattern of {self.tokenizer!r}'s model ({families}) or give "
                "{'prefix', 'token', 'length', 'suffix'}; it is never guessed"
            )
        if isinstance(self.image_pattern, str):
            if self.image_pattern not in IMAGE_PATTERNS:
                raise ValueError(f"image_pattern {self.image_pattern!r} is unknown; families: {families}")
            return
        keys = {f.name for f in fields(ImagePattern)}
        if not isinstance(self.image_pattern, dict) or set(self.image_pattern) != keys:
            raise ValueError(f"image_pattern must be a family ({families}) or a dict of {sorted(keys)}")
        self.resolved_image_pattern().check()
