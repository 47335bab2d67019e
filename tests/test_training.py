"""ToolkitModule: frozen auxiliary networks stay out of checkpoints under every name they are reachable by."""

from __future__ import annotations

import torch
from torch import nn

from stylegan_lightning.nets._state import FrozenModule
from stylegan_lightning.training import ToolkitModule, frozen_auxiliary_prefixes


class Frozen(FrozenModule):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 3)
        self.freeze()


class Holder(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network


class Module(ToolkitModule):
    def __init__(self, with_network: bool = True):
        super().__init__()
        self.trained = nn.Linear(2, 2)
        shared = Frozen() if with_network else None
        # one frozen network shared by two metric holders (what the metric collections do)
        self.val = Holder(shared) if shared else nn.Module()
        self.test = Holder(shared) if shared else nn.Module()


def test_shared_frozen_network_is_excluded_under_every_name():
    module = Module()
    assert frozen_auxiliary_prefixes(module) == ["val.network.", "test.network."]
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert sorted(checkpoint["state_dict"]) == ["trained.bias", "trained.weight"]


def test_checkpoint_without_the_network_loads_into_a_module_with_it():
    saved = Module(with_network=False)
    checkpoint = {"state_dict": saved.state_dict()}
    loaded = Module()
    loaded.on_load_checkpoint(checkpoint)
    loaded.load_state_dict(checkpoint["state_dict"])  # strict: the frozen network's keys were filled in
    assert torch.equal(loaded.trained.weight, saved.trained.weight)
