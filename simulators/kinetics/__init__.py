"""Thermal-runaway decomposition kinetics shared by the lumped simulators and `abuse_fe`.

>>> from simulators.kinetics import load
>>> ks = load("hatchard2001").at_soc(1.0)
>>> dstate, q = ks.rates(T, ks.initial(T.shape))      # [1/s], [W/m3]
>>> new, released = ks.advance(T, state, dt)           # exact step at fixed T, [J/m3]
"""
from simulators.kinetics.rates import R_GAS, KineticSet, Reaction, available, load

__all__ = ["R_GAS", "KineticSet", "Reaction", "available", "load"]
