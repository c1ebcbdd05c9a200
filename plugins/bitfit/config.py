"""BitFit config: which linear layers get a trainable bias."""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import PeftConfig
from peft.utils import PeftType


@dataclass
class BitFitConfig(PeftConfig):
    """BitFit (Ben Zaken et al., 2022): only bias terms train.

    Args:
        target_modules: Names (or a regex) of the ``nn.Linear`` layers whose bias trains; ``None`` uses the
            per-architecture default in ``model.py``.
        exclude_modules: Names (or a regex) of modules never to target.
        bias_init: ``zeros`` or ``linear`` (nn.Linear's bias init, as PEFT-Factory's ``peft/bitfit``).
    """

    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Linear layers whose bias trains (names or a regex)."}
    )
    exclude_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Modules never to target (names or a regex)."}
    )
    bias_init: str = field(
        default="zeros",
        metadata={
            "help": "Start of the trained bias: 'zeros' (the tuned model equals the base at step 0) or "
            "'linear' (nn.Linear's own bias init, U(-1/sqrt(in), 1/sqrt(in)), as PEFT-Factory's peft/bitfit)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = PeftType.BITFIT
        if self.bias_init not in ("zeros", "linear"):
            raise ValueError(f"bias_init must be 'zeros' or 'linear', got {self.bias_init!r}.")
        if isinstance(self.target_modules, list):
            self.target_modules = set(self.target_modules)
        if isinstance(self.exclude_modules, list):
            self.exclude_modules = set(self.exclude_modules)
