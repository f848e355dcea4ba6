"""Factories that fail in the ways users' factories do."""

from torch import nn


def raises() -> nn.Module:
    raise RuntimeError("checkpoint weights.pt not found")


def not_a_module():
    return 42
