"""Physics without a mesh: the `Simulator` contract, priors, TR kinetics, lumped and PyBaMM models.

Heavy dependencies (PyBaMM, dolfinx) are imported only by the modules that need them.
"""
from simulators.base import Condition, Parameter, Simulator, attach_units
from simulators.priors import Prior
from simulators.registry import available, load, register

__all__ = ["Condition", "Parameter", "Prior", "Simulator", "attach_units", "available", "load", "register"]
