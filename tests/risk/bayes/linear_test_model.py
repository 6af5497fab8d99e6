"""Test model for risk.bayes: a linear-Gaussian surrogate with a known answer (imported by tests)."""
import os

os.environ.setdefault("PYTENSOR_FLAGS", "blas__ldflags=")

import numpy as np
import pytensor.tensor as pt

# observables = A u + 0.5 c, known noise 0.1; logit_runaway = 2 u_0 + 3 c - 1
A = np.array([[1.0, 0.5], [-0.3, 1.0], [0.2, -0.8]])
NOISE = 0.1


def linear_surrogate(u, c):
    """PyTensor surrogate with the FrozenDecoder.pytensor_apply signature (test model, not a mock)."""
    mean = pt.dot(u, A.T) + 0.5 * c[:, :1]
    return {"mean": mean, "log_scale": pt.full_like(mean, np.log(NOISE)),
            "logit_runaway": 2.0 * u[:, 0] + 3.0 * c[:, 0] - 1.0}


