"""sim2real: a conditional VAE whose decoder is a frozen physics emulator (Hwasser et al.'s informed regulariser).

Workflow::

    dec = FrozenDecoderCVAE(sim).append_simulations(open_ensemble(path)).train()   # p(x | θ, c), frozen
    fit = dec.fit_encoder(real)                                                    # q(θ | x, c) on real tests
    dec.save(model_dir, fit)
    frozen = load_decoder(model_dir)          # jax_apply / pytensor_apply for the Bayesian stage

The names below are imported from their modules on first use (PEP 562): loading and evaluating a frozen decoder
(`load_decoder`, `FrozenDecoder`) does not import torch, which only training and the encoder need.
"""
import importlib

_EXPORTS = {
    "sim2real.bridge": ("ObservableLayout", "ThetaTransform", "build_layout", "ensemble_to_batch", "real_to_batch"),
    "sim2real.frozen": ("DecoderConfig", "FrozenDecoder"),
    "sim2real.decoder": ("FrozenDecoderCVAE",),
    "sim2real.discrepancy": ("misspecification_check",),
    "sim2real.encoder": ("EncoderConfig", "EncoderFit", "fit_encoder"),
    "sim2real.export": ("jax_decoder", "load_decoder", "pytensor_decoder"),
    "sim2real.io": ("load_encoder", "load_model", "save_model"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'sim2real' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
