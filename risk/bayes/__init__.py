"""Bayesian calibration: the physics model (`model`, `subspace`, `physics`), the metadata baselines
(`baselines`), NumPyro NUTS (`sampling`), `diagnostics`."""
from risk.bayes.baselines import build_heat_model, build_ordinal_model
from risk.bayes.diagnostics import Diagnostics, DiagnosticsFailed, Thresholds, check, summarize
from risk.bayes.model import CalibrationData, build_hierarchical_model, prior_moments_u
from risk.bayes.sampling import load_posterior, sample, stack_draws

__all__ = ["CalibrationData", "Diagnostics", "DiagnosticsFailed", "Thresholds", "build_heat_model",
           "build_hierarchical_model", "build_ordinal_model", "check", "load_posterior", "prior_moments_u",
           "sample", "stack_draws", "summarize"]
