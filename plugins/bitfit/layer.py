"""The BitFit layer: a linear layer plus a per-adapter bias delta, y = W x + b + delta_b."""

from __future__ import annotations

import math

import torch
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn


class BitFitLayer(nn.Module, BaseTunerLayer):
    """Wraps an ``nn.Linear``; ``bitfit_bias[adapter]`` (zero at start) is added to the layer's bias.

    A layer without a bias behaves as if its bias were zero, so the tuned model starts equal to the base.
    Training the delta from zero is the same as training the original bias from its value.
    """

    adapter_layer_names = ("bitfit_bias",)

    def __init__(self, base_layer: nn.Module, adapter_name: str, bias_init: str = "zeros") -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"BitFit targets nn.Linear layers, got {type(base_layer).__name__}.")
        self.base_layer = base_layer
        self.bitfit_bias = nn.ParameterDict({})
        self.merged_adapters = []
        self._created_bias = False  # merging into a bias-free layer adds a (zero-initialised) bias
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, bias_init=bias_init)

    def update_layer(self, adapter_name: str, inference_mode: bool = False, bias_init: str = "zeros") -> None:
        weight = self.get_base_layer().weight
        # fp32 whatever the base dtype (master weights): a bf16 delta would lose small updates
        delta = torch.zeros(self.out_features, device=weight.device, dtype=torch.float32)
        if bias_init == "linear":  # nn.Linear.reset_parameters' bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            bound = 1 / math.sqrt(self.in_features)
            nn.init.uniform_(delta, -bound, bound)
        self.bitfit_bias[adapter_name] = nn.Parameter(delta)
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        for name in self.active_adapters:
            if name in self.bitfit_bias:
                result = result + self.bitfit_bias[name].to(result.dtype)
        return result

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        adapter_names = check_adapters_to_merge(self, adapter_names)
        base = self.get_base_layer()
        for name in adapter_names:
            if name not in self.bitfit_bias:
                continue
            delta = self.bitfit_bias[name].detach()
            if safe_merge and not torch.isfinite(delta).all():
                raise ValueError(f"NaNs in the BitFit bias of adapter {name!r}; not merged.")
            if base.bias is None:  # in the weight's dtype: F.linear needs one dtype for all three
                base.bias = nn.Parameter(
                    torch.zeros_like(delta, dtype=base.weight.dtype), requires_grad=False
                )
                self._created_bias = True
            base.bias.data += delta.to(base.bias.dtype)
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        base = self.get_base_layer()
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            base.bias.data -= self.bitfit_bias[name].detach().to(base.bias.dtype)

    def __repr__(self) -> str:
        return "bitfit." + super().__repr__()
