"""sim2real: a conditional VAE whose decoder is a frozen physics emulator (Hwasser et al.'s informed regulariser).

Workflow::

    dec = FrozenDecoderCVAE(sim).append_simulations(open_ensemble(path)).train()   # p(x | θ, c), frozen
    fit = dec.fit_encoder(real)                                                    # q(θ | x, c) on real tests
    dec.save(model_dir, fit)
    frozen = load_decoder(model_dir)          # jax_apply / pytensor_apply for the Bayesian stage
"""
from sim2real.bridge import ObservableLayout, ThetaTransform, build_layout, ensemble_to_batch, real_to_batch
from sim2real.decoder import DecoderConfig, FrozenDecoder, FrozenDecoderCVAE
from sim2real.discrepancy import misspecification_check
from sim2real.encoder import EncoderConfig, EncoderFit, fit_encoder
from sim2real.export import jax_decoder, load_decoder, pytensor_decoder
from sim2real.io import load_encoder, load_model, save_model

__all__ = [
    "DecoderConfig", "EncoderConfig", "EncoderFit", "FrozenDecoder", "FrozenDecoderCVAE", "ObservableLayout",
    "ThetaTransform", "build_layout", "ensemble_to_batch", "fit_encoder", "jax_decoder", "load_decoder",
    "load_encoder", "load_model", "misspecification_check", "pytensor_decoder", "real_to_batch", "save_model",
]
