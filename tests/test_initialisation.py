"""The models start from the tutorials' weights, draw for draw.

``mlp.py`` seeds ``numpy.random.RandomState(1234)`` and draws the hidden
layer's weights with one ``rng.uniform(low=-bound, high=bound, size=(n_in,
n_hidden))`` (x4 for a sigmoid); ``convolutional_mlp.py`` seeds
``RandomState(23455)`` and draws the first stage's filters, the second's, then
the hidden layer's weights.  Every bias and the softmax layer start at zero.
The expected values below are computed here, independently of dlt_lib, from
``RandomState.random_sample`` and the bounds written out by hand:
``uniform(low, high)`` is ``low + (high - low) * random_sample()``.
"""

import numpy as np
import pytest

from dlt_lib.models import MLP, LeNet


def uniform_draws(rng, bound, shape):
    return (-bound + (bound - -bound) * rng.random_sample(shape)).astype(np.float32)


@pytest.mark.parametrize("activation, factor", [("tanh", 1), ("sigmoid", 4), ("relu", 1)])
def test_mlp_draws_the_tutorials_weights(activation, factor):
    model = MLP(784, 500, 10, activation=activation)  # seed=1234, as mlp.py
    values = model.get_param_values()
    rng = np.random.RandomState(1234)
    expected = uniform_draws(rng, np.sqrt(6.0 / (784 + 500)), (784, 500)) * np.float32(factor)
    np.testing.assert_array_equal(values["hidden_W"], expected)
    assert values["hidden_W"][0, :3].tolist() == expected[0, :3].tolist()  # the very first draws
    for name in ("hidden_b", "output_W", "output_b"):
        assert not values[name].any(), f"{name} must start at zero"


def test_mlp_seed_changes_the_draws_and_nothing_else():
    a, b = MLP(20, 7, 3, seed=1), MLP(20, 7, 3, seed=2)
    assert not np.array_equal(a.hidden.W.get_value(), b.hidden.W.get_value())
    expected = uniform_draws(np.random.RandomState(2), np.sqrt(6.0 / 27), (20, 7))
    np.testing.assert_array_equal(b.hidden.W.get_value(), expected)


def test_lenet_draws_the_tutorials_weights_in_their_order():
    values = LeNet().get_param_values()  # seed=23455, nkerns=(20, 50), 500 hidden units
    rng = np.random.RandomState(23455)
    # Stage 1: fan_in = 1*5*5 = 25, fan_out = 20*5*5 / (2*2) = 125.
    conv1 = uniform_draws(rng, np.sqrt(6.0 / (25 + 125)), (20, 1, 5, 5))
    # Stage 2: fan_in = 20*5*5 = 500, fan_out = 50*5*5 // 4 = 312 (integer division, as the tutorials).
    conv2 = uniform_draws(rng, np.sqrt(6.0 / (500 + 312)), (50, 20, 5, 5))
    # The tanh layer on 50 maps of 4x4: mlp.py's HiddenLayer, drawn from the same generator.
    hidden = uniform_draws(rng, np.sqrt(6.0 / (800 + 500)), (800, 500))
    np.testing.assert_array_equal(values["conv1_W"], conv1)
    np.testing.assert_array_equal(values["conv2_W"], conv2)
    np.testing.assert_array_equal(values["hidden_W"], hidden)
    for name in ("conv1_b", "conv2_b", "hidden_b", "output_W", "output_b"):
        assert not values[name].any(), f"{name} must start at zero"
    assert LeNet().n_parameters == 20 * 25 + 20 + 50 * 500 + 50 + 800 * 500 + 500 + 500 * 10 + 10


def test_lenet_draws_in_the_tutorials_order_for_other_sizes():
    model = LeNet(nkerns=(4, 6), n_hidden=30, seed=7)
    rng = np.random.RandomState(7)
    conv1 = uniform_draws(rng, np.sqrt(6.0 / (25 + 4 * 25 // 4)), (4, 1, 5, 5))
    conv2 = uniform_draws(rng, np.sqrt(6.0 / (4 * 25 + 6 * 25 // 4)), (6, 4, 5, 5))
    hidden = uniform_draws(rng, np.sqrt(6.0 / (6 * 16 + 30)), (6 * 16, 30))
    np.testing.assert_array_equal(model.conv_pool1.W.get_value(), conv1)
    np.testing.assert_array_equal(model.conv_pool2.W.get_value(), conv2)
    np.testing.assert_array_equal(model.hidden.W.get_value(), hidden)
