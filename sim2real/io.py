"""Model directory: everything needed to rebuild the frozen decoder (and encoder) without the data.

Layout of ``model_dir``::

    model.json        names, layout + normalisers, θ transform, configs, PCA component sizes, versions
    decoder.npz       decoder weights (float64 arrays; the export format of `DecoderNet.weights`)
    decoder.pt        torch state dict (reference)
    error_factor.npy  static emulator-error factor (n_coef, n_obs), see `FrozenDecoder.error_factor`
    encoder.pt        encoder state dict + discrepancy (if an encoder was fitted)
    metrics.json      held-out decoder metrics (+ encoder ELBO, discrepancy, misspecification summary)
    hashes.json       sha256 of the inputs (ensemble, real data)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import xarray as xr

FORMAT_VERSION = 1


def hash_dataset(ds: xr.Dataset) -> str:
    """sha256 over the names, dims and values of every variable and coordinate (order-independent)."""
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        v = ds[name]
        h.update(name.encode())
        h.update(repr(v.dims).encode())
        vals = np.asarray(v.values)
        h.update(vals.astype(str).tobytes() if vals.dtype.kind in "OUS" else np.ascontiguousarray(vals).tobytes())
    return h.hexdigest()


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    return o


def save_model(model_dir, decoder, encoder=None) -> Path:
    """Write ``decoder`` (a `FrozenDecoder`) and optionally an `EncoderFit` to ``model_dir``."""
    import torch

    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": FORMAT_VERSION,
        "parameter_names": decoder.parameter_names,
        "condition_names": decoder.condition_names,
        "layout": decoder.layout.to_json(),
        "transform": decoder.transform.to_json(),
        "decoder_config": asdict(decoder.config),
        "component_sizes": decoder.component_sizes,
        "versions": {"torch": torch.__version__, "numpy": np.__version__},
    }
    (d / "model.json").write_text(json.dumps(_jsonable(meta), indent=1))
    np.savez(d / "decoder.npz", **decoder.weights)
    np.save(d / "error_factor.npy", decoder.error_factor)
    torch.save(decoder.torch_module.state_dict(), d / "decoder.pt")
    metrics = {"decoder": decoder.metrics}
    hashes = dict(decoder.hashes)
    if encoder is not None:
        torch.save({"state_dict": encoder.net.state_dict(), "log_sd_discrepancy": encoder.log_sd_discrepancy,
                    "config": asdict(encoder.config), "summary_dim": encoder.summary_dim}, d / "encoder.pt")
        metrics["encoder"] = encoder.metrics
        hashes.update(encoder.hashes)
    (d / "metrics.json").write_text(json.dumps(_jsonable(metrics), indent=1))
    (d / "hashes.json").write_text(json.dumps(hashes, indent=1))
    return d


def load_model(model_dir):
    """Rebuild the `FrozenDecoder` from ``model_dir`` (weights from ``decoder.npz``; torch is not imported)."""
    from sim2real.bridge import ObservableLayout, ThetaTransform
    from sim2real.frozen import DecoderConfig, FrozenDecoder

    d = Path(model_dir)
    if not (d / "model.json").exists():
        raise FileNotFoundError(f"{d}: no model.json; train the model first (sim2real FrozenDecoderCVAE.train().save)")
    meta = json.loads((d / "model.json").read_text())
    layout = ObservableLayout.from_json(meta["layout"])
    transform = ThetaTransform.from_json(meta["transform"])
    cfg = DecoderConfig(**meta["decoder_config"] | {"gp_observables": tuple(meta["decoder_config"].get("gp_observables", ()))})
    # float32 values, as the torch module holds them before it is frozen in float64
    with np.load(d / "decoder.npz") as saved:
        w = {k: v.astype(np.float32).astype(np.float64) for k, v in saved.items()}
    # models saved before the runaway head had its linear skip: a zero skip is the same function
    w.setdefault("runaway_skip_w", np.zeros((1, len(transform.names) + len(layout.condition_names))))
    metrics = json.loads((d / "metrics.json").read_text()).get("decoder", {}) if (d / "metrics.json").exists() else {}
    hashes = json.loads((d / "hashes.json").read_text()) if (d / "hashes.json").exists() else {}
    dec = FrozenDecoder(w, layout, transform, cfg, meta["component_sizes"], metrics, hashes)
    if (d / "error_factor.npy").exists():
        dec.error_factor = np.load(d / "error_factor.npy")
    return dec


def load_encoder(model_dir, decoder=None):
    """The `EncoderFit` saved in ``model_dir`` (amortised q(θ | x, c) for newly measured tests), on ``decoder``
    (default: `load_model` of the same directory); None when the model was trained without real tests.

    The loaded fit carries no training tests: pass the tests to infer (``fit.posterior(real=...)``).
    """
    import torch

    from sim2real.encoder import EncoderConfig, EncoderFit, Summary
    from sim2real.networks import EncoderNet

    d = Path(model_dir)
    if not (d / "encoder.pt").exists():
        return None
    decoder = decoder if decoder is not None else load_model(d)
    saved = torch.load(d / "encoder.pt", weights_only=True)
    known = set(EncoderConfig.__dataclass_fields__)
    cfg = EncoderConfig(**{k: v for k, v in saved["config"].items() if k in known})
    net = EncoderNet(int(saved["summary_dim"]), len(decoder.parameter_names), cfg.width, cfg.depth,
                     torch.Generator().manual_seed(0)).to(torch.float64)
    net.load_state_dict(saved["state_dict"])
    metrics = json.loads((d / "metrics.json").read_text()).get("encoder", {}) if (d / "metrics.json").exists() else {}
    hashes = json.loads((d / "hashes.json").read_text()) if (d / "hashes.json").exists() else {}
    return EncoderFit(decoder, net, Summary(decoder, cfg.ridge), None, saved["log_sd_discrepancy"], cfg,
                      metrics.get("restarts_elbo", []), hashes.get("real"))
