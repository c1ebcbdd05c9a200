"""The SVFT layer: y = W x + sigmoid(g) * U M V^T x, with U, V the frozen singular vectors of W."""

from __future__ import annotations

import torch
from peft.tuners._buffer_dict import BufferDict
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn


def banded_indices(rank: int, off_diag: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of a ``rank x rank`` band with half-width ``off_diag``, row-major."""
    rows, cols = torch.meshgrid(torch.arange(rank), torch.arange(rank), indexing="ij")
    keep = (rows - cols).abs() <= off_diag
    return rows[keep], cols[keep]


class SVFTLayer(nn.Module, BaseTunerLayer):
    """Wraps an ``nn.Linear``. Per adapter: trainable band values of M and a gate logit; frozen U and V.

    U and V are recomputed from the base weight (an SVD) whenever the adapter is created, so they are
    non-persistent buffers: a saved adapter holds only the band values and the gate.
    """

    adapter_layer_names = ("svft_values", "svft_gate")
    other_param_names = ("svft_u", "svft_v", "svft_rows", "svft_cols")

    def __init__(
        self, base_layer: nn.Module, adapter_name: str, off_diag: int, rank: int | None, gate_init: float
    ):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"SVFT targets nn.Linear layers, got {type(base_layer).__name__}.")
        self.base_layer = base_layer
        self.svft_values = nn.ParameterDict({})
        self.svft_gate = nn.ParameterDict({})
        self.svft_u = BufferDict({}, persistent=False)
        self.svft_v = BufferDict({}, persistent=False)
        self.svft_rows = BufferDict({}, persistent=False)
        self.svft_cols = BufferDict({}, persistent=False)
        self.merged_adapters = []
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, off_diag, rank, gate_init)

    def update_layer(self, adapter_name: str, off_diag: int, rank: int | None, gate_init: float) -> None:
        weight = self.get_base_layer().weight
        u, _, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
        rank = min(rank or u.shape[1], u.shape[1])
        rows, cols = banded_indices(rank, off_diag)
        self.svft_u[adapter_name] = u[:, :rank].to(weight.dtype).contiguous()
        self.svft_v[adapter_name] = vh[:rank].to(weight.dtype).contiguous()
        self.svft_rows[adapter_name] = rows.to(weight.device)
        self.svft_cols[adapter_name] = cols.to(weight.device)
        # trainable values in fp32 whatever the base dtype (master weights); computed in U/V's dtype
        self.svft_values[adapter_name] = nn.Parameter(
            torch.zeros(rows.numel(), device=weight.device, dtype=torch.float32)
        )
        self.svft_gate[adapter_name] = nn.Parameter(
            torch.tensor(float(gate_init), device=weight.device, dtype=torch.float32)
        )
        self.set_adapter(self.active_adapters)

    def _band(self, name: str) -> torch.Tensor:
        """The dense ``rank x rank`` matrix ``sigmoid(g) * M``."""
        values = self.svft_values[name]
        rank = self.svft_u[name].shape[1]
        m = values.new_zeros(rank, rank).index_put((self.svft_rows[name], self.svft_cols[name]), values)
        return (torch.sigmoid(self.svft_gate[name]) * m).to(self.svft_u[name].dtype)

    def delta_weight(self, name: str) -> torch.Tensor:
        return self.svft_u[name] @ self._band(name) @ self.svft_v[name]

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        for name in self.active_adapters:
            if name not in self.svft_values:
                continue
            h = x.to(self.svft_v[name].dtype) @ self.svft_v[name].T  # into singular-vector space: rank wide
            result = result + ((h @ self._band(name).T) @ self.svft_u[name].T).to(result.dtype)
        return result

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        adapter_names = check_adapters_to_merge(self, adapter_names)
        weight = self.get_base_layer().weight
        for name in adapter_names:
            if name not in self.svft_values:
                continue
            delta = self.delta_weight(name).detach().to(weight.dtype)
            if safe_merge and not torch.isfinite(weight.data + delta).all():
                raise ValueError(f"NaNs when merging SVFT adapter {name!r}; not merged.")
            weight.data += delta
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        weight = self.get_base_layer().weight
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            weight.data -= self.delta_weight(name).detach().to(weight.dtype)

    def __repr__(self) -> str:
        return "svft." + super().__repr__()
