import math
import pickle

import numpy as np
import pytest
import torch

from neurojoule.neuron import ATan, Rectangular, Sigmoid, Triangle, get_surrogate, spike

# The derivative of each surrogate, written from its textbook formula in numpy.
ANALYTIC = {
    "triangle": lambda v, p: np.maximum(0.0, 1.0 - np.abs(v) / p) / p,
    "sigmoid": lambda v, p: p * np.exp(-p * v) / (1.0 + np.exp(-p * v)) ** 2,
    "atan": lambda v, p: (p / 2.0) / (1.0 + (math.pi / 2.0 * p * v) ** 2),
    "rectangular": lambda v, p: (np.abs(v) < p / 2.0) / p,
}
CASES = [
    (Triangle(), 1.0),
    (Triangle(width=0.5), 0.5),
    (Sigmoid(), 4.0),
    (Sigmoid(alpha=2.5), 2.5),
    (ATan(), 2.0),
    (ATan(alpha=3.0), 3.0),
    (Rectangular(), 1.0),
    (Rectangular(width=0.4), 0.4),
]


@pytest.mark.parametrize(("surrogate", "param"), CASES, ids=str)
def test_backward_matches_analytic_derivative(surrogate, param):
    v = torch.linspace(-3.0, 3.0, 1201, dtype=torch.float64).requires_grad_()
    weight = torch.rand_like(v)
    (spike(v, surrogate) * weight).sum().backward()
    expected = ANALYTIC[surrogate.name](v.detach().numpy(), param) * weight.numpy()
    np.testing.assert_allclose(v.grad.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("surrogate", "param"), CASES, ids=str)
def test_derivative_has_unit_area(surrogate, param):
    """Each surrogate stands in for the step from 0 to 1, so its derivative integrates to 1."""
    v = torch.linspace(-200.0, 200.0, 2_000_001, dtype=torch.float64)
    area = torch.trapezoid(surrogate.derivative(v), v).item()
    assert area == pytest.approx(1.0, abs=5e-3)


def test_forward_is_heaviside_with_spike_at_zero():
    v = torch.tensor([-1.0, -1e-7, 0.0, 1e-7, 2.0])
    assert spike(v, "triangle").tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert spike(v.double(), "atan").dtype == torch.float64


@pytest.mark.parametrize(("surrogate", "_"), CASES, ids=str)
def test_picklable_and_round_trips_through_its_string(surrogate, _):
    assert pickle.loads(pickle.dumps(surrogate)) == surrogate
    assert get_surrogate(str(surrogate)) == surrogate


def test_configurable_by_name():
    assert get_surrogate("sigmoid") == Sigmoid(alpha=4.0)
    assert get_surrogate(" atan( alpha = 5 ) ") == ATan(alpha=5.0)
    assert get_surrogate("triangle(width=0.25)") == Triangle(width=0.25)


@pytest.mark.parametrize(
    "spec", ["gaussian", "sigmoid(beta=2)", "sigmoid(alpha=two)", "triangle(width=-1)", "atan(2)"]
)
def test_bad_specs_are_rejected_with_a_clear_error(spec):
    with pytest.raises(ValueError, match="surrogate"):
        get_surrogate(spec)
