"""BitFit (Ben Zaken et al., 2022) as a peft tuner: only the bias terms of the targeted linear layers train.

Update rule: y = W x + (b + delta_b), with W and b frozen and delta_b (zero at start) trained.
"""

from __future__ import annotations

from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from .layer import BitFitLayer

# Every linear projection of a decoder block, by architecture (used when target_modules is None).
_LLAMA_STYLE = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGET_MODULE_MAPPING = {"llama": _LLAMA_STYLE, "qwen2": _LLAMA_STYLE, "mistral": _LLAMA_STYLE}


class BitFitModel(BaseTuner):
    prefix: str = "bitfit_"
    tuner_layer_cls = BitFitLayer
    target_module_mapping = TARGET_MODULE_MAPPING

    def _create_and_replace(
        self,
        peft_config,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **kwargs,
    ) -> None:
        if isinstance(target, BitFitLayer):
            target.update_layer(adapter_name, bias_init=peft_config.bias_init)
            return
        new_module = BitFitLayer(target, adapter_name, bias_init=peft_config.bias_init)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)
