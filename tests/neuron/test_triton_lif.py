"""The Triton LIF backend against the torch loop, run in Triton's interpreter on the CPU.

TRITON_INTERPRET=1 is set for this module only (a module fixture; triton_lif builds its
kernels at first use for the current value, so it does not matter what imported triton
before). The interpreter evaluates the kernels with numpy in IEEE arithmetic, as a GPU does
without fused multiply-add: spikes and states must be equal to the loop's, gradients equal to
rounding. The kernels are also compiled for a CUDA GPU (sm_90) without running them, to check
that they compile and that the forward's arithmetic is the loop's (no fused multiply-add,
division rounded to nearest). Where triton is not installed these tests are skipped; the
backend selection tests run everywhere.
"""

import itertools
import re

import pytest
import torch
from lif_reference import assert_same_grads, lif_inputs, lif_params, step_loop

import neurojoule.neuron.lif_core as lif_core
from neurojoule.neuron import LIFParameters, Surrogate, lif, lif_trace

DTYPES = (torch.float32, torch.float64)
HAS_TRITON = lif_core.triton_available()
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")


@pytest.fixture(scope="module")
def interpreter():
    """Triton's interpreter for this module's tests, and the env as it was afterwards. Triton
    itself is imported before the switch, as any other user of it in this process would have
    it (its library functions are built at import)."""
    pytest.importorskip("triton")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        yield


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _check_against_the_loop(x, u0, leak, vth, params):
    leaves = (x, u0, leak, vth)
    spikes, state = lif(x, params, time_dim=0, state=u0, backend="triton")
    ref_spikes, ref_state = step_loop(x, u0, params)
    assert torch.equal(spikes, ref_spikes)
    assert torch.equal(state, ref_state)
    assert_same_grads((spikes, state), (ref_spikes, ref_state), leaves, rtol=1e-5, atol=1e-5)
    return spikes


# (steps, one step's shape): neurons fewer than one interpreter block (16), a partial last
# block, one neuron; steps fewer than the prefetch depth, one step, and many
SHAPES = [(37, (3, 5)), (9, (37,)), (1, (2, 3)), (3, (1,))]


COMBINATIONS = list(
    itertools.product(
        ["multiplicative", "input"],  # decay form
        ["hard", "soft"],  # reset
        [False, True],  # detach_reset
        [False, True],  # detach_state (SLTT)
    )
)


@pytest.mark.parametrize(("form", "reset", "detach_reset", "sltt"), COMBINATIONS)
def test_triton_equals_the_step_loop(interpreter, form, reset, detach_reset, sltt):
    surrogate = "triangle" if reset == "hard" else "sigmoid(alpha=4)"
    v_reset = -0.2 if detach_reset else 0.0
    settings = dict(reset=reset, v_reset=v_reset, detach_reset=detach_reset, detach_state=sltt)
    for dtype, (steps, shape) in itertools.product(DTYPES, SHAPES):
        x, u0, leak, vth = lif_inputs(dtype, form, steps, shape, seed=0)
        spikes = _check_against_the_loop(
            x, u0, leak, vth, lif_params(form, leak, vth, surrogate=surrogate, **settings)
        )
        if steps > 30:
            assert 0.05 < spikes.mean() < 0.95


class _Quadratic(Surrogate):
    """A surrogate the kernel does not know: torch evaluates its derivative."""

    name = "quadratic"

    def derivative(self, v):
        return (1.0 - v * v).clamp_min(0.0) * 0.75


@pytest.mark.parametrize(
    "surrogate",
    ["triangle(width=0.7)", "sigmoid(alpha=3)", "atan(alpha=2.5)", "rectangular(width=1.3)"],
)
def test_every_surrogate_gives_the_loops_gradients(interpreter, surrogate):
    for form, dtype in itertools.product(["multiplicative", "input"], DTYPES):
        x, u0, leak, vth = lif_inputs(dtype, form, 23, (2, 9), seed=1)
        _check_against_the_loop(x, u0, leak, vth, lif_params(form, leak, vth, surrogate=surrogate))


def test_a_surrogate_unknown_to_the_kernel_is_evaluated_by_torch(interpreter):
    x, u0, leak, vth = lif_inputs(torch.float32, "input", 23, (2, 9), seed=2)
    params = lif_params("input", leak, vth, surrogate=_Quadratic(), reset="soft")
    _check_against_the_loop(x, u0, leak, vth, params)


def test_float_parameters_shared_by_every_neuron(interpreter):
    x = (torch.randn(30, 4, 19) * 1.2).requires_grad_()
    for params in (LIFParameters(decay=0.125), LIFParameters(tau=2.0, reset="soft")):
        spikes, state = lif(x, params, time_dim=0, backend="triton")
        ref_spikes, ref_state = step_loop(x, torch.zeros(4, 19), params)
        assert torch.equal(spikes, ref_spikes) and torch.equal(state, ref_state)
        assert_same_grads((spikes, state), (ref_spikes, ref_state), (x,), rtol=1e-5, atol=1e-5)


def test_only_the_final_state_in_the_loss(interpreter):
    """No gradient reaches the spikes: the kernel runs without grad_s."""
    x, u0, leak, vth = lif_inputs(torch.float64, "multiplicative", 12, (7,), seed=0)
    params = lif_params("multiplicative", leak, vth)
    leaves = (x, u0, leak, vth)
    _, state = lif(x, params, time_dim=0, state=u0, backend="triton")
    _, ref_state = step_loop(x, u0, params)
    got = torch.autograd.grad(state.sum(), leaves)
    want = torch.autograd.grad(ref_state.sum(), leaves)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_time_axis_chunks_and_trace(interpreter):
    x = torch.randn(2, 3, 41) * 1.5  # [B, H, L], time last
    params = LIFParameters(tau=3.0, reset="soft")
    whole, final = lif(x, params, time_dim=-1, backend="triton")
    ref, ref_final = lif(x, params, time_dim=-1, backend="torch")
    assert torch.equal(whole, ref) and torch.equal(final, ref_final)
    pieces, state = [], None
    for part in torch.split(x, [13, 1, 27], dim=-1):
        s, state = lif(part, params, time_dim=-1, state=state, backend="triton")
        pieces.append(s)
    assert torch.equal(torch.cat(pieces, dim=-1), whole) and torch.equal(state, final)
    spikes, h = lif_trace(x, params, time_dim=-1, backend="triton")
    ref_spikes, ref_h = lif_trace(x, params, time_dim=-1, backend="torch")
    assert torch.equal(spikes, ref_spikes) and torch.equal(h, ref_h)


def _same(a, b) -> bool:
    return bool(((a == b) | (a.isnan() & b.isnan())).all())


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy: Inf-Inf
@pytest.mark.parametrize(
    ("form", "reset"), list(itertools.product(["multiplicative", "input"], ["hard", "soft"]))
)
def test_non_finite_input_as_the_loop(interpreter, form, reset):
    params = lif_params(form, 0.5 if form == "multiplicative" else 2.0, 1.0, reset=reset)
    for value in (float("nan"), float("inf"), float("-inf")):
        x = torch.tensor([0.3, 0.9, 1.4, 0.6]).repeat(12, 1)
        x[4] = value
        spikes, state = lif(x, params, time_dim=0, backend="triton")
        ref_spikes, ref_state = step_loop(x, torch.zeros(4), params)
        assert torch.equal(spikes, ref_spikes) and _same(state, ref_state)


def test_without_gradients_and_under_vmap(interpreter):
    generator = torch.Generator().manual_seed(0)
    x = 2 * torch.rand(3, 7, 2, 5, generator=generator)  # [members, T, B, C]
    thresholds = 0.5 + torch.rand(3, 5, generator=generator)

    def run(x_member, threshold, backend="triton"):
        params = LIFParameters(decay=0.6, v_threshold=threshold)
        return lif(x_member, params, time_dim=0, backend=backend)

    with torch.no_grad():
        spikes, states = torch.vmap(run)(x, thresholds)
        for member in range(3):
            want_spikes, want_state = run(x[member], thresholds[member], "torch")
            assert torch.equal(spikes[member], want_spikes)
            assert torch.equal(states[member], want_state)


def test_auto_runs_triton_only_on_cuda():
    x = torch.randn(5, 3)
    assert not lif_core._Run(x, LIFParameters(decay=0.5), 0, None, "auto").triton
    assert lif_core._Run(x, LIFParameters(decay=0.5), 0, None, "auto").numba


def test_the_triton_backend_refuses_what_it_cannot_run(monkeypatch):
    x, params = torch.randn(5, 3), LIFParameters(decay=0.5)
    monkeypatch.setattr(lif_core, "triton_available", lambda: False)
    with pytest.raises(ValueError, match=r"needs triton: pip install 'neurojoule\[gpu\]'"):
        lif(x, params, time_dim=0, backend="triton")
    if HAS_TRITON:
        monkeypatch.undo()
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        with pytest.raises(ValueError, match="float32/float64 CUDA tensor"):
            lif(x, params, time_dim=0, backend="triton")
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        with pytest.raises(ValueError, match="float32/float64 CUDA tensor"):
            lif(x.half(), params, time_dim=0, backend="triton")


@needs_triton
def test_the_kernels_compile_for_a_cuda_gpu_with_the_loops_arithmetic():
    """Compiled for sm_90 (no GPU needed): the forward has no fused multiply-add and divides
    with IEEE rounding (float32 `/` in Triton is an approximate division)."""
    import triton
    from triton.runtime.jit import JITFunction

    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError:
        pytest.skip("this triton cannot compile ahead of time")
    from neurojoule.neuron import triton_lif

    def argument_type(name, dtype, constexprs):
        if name in constexprs:
            return "constexpr"
        return "*" + dtype if name.endswith("_ptr") else "i32"

    def ptx(kernel, dtype, **constexprs) -> str:
        fn = JITFunction(kernel)
        signature = {name: argument_type(name, dtype, constexprs) for name in fn.arg_names}
        source = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
        options = {**triton_lif.COMPILE_OPTIONS, "num_warps": 1}
        return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options).asm["ptx"]

    for dtype, input_decay in itertools.product(["fp32", "fp64"], [False, True]):
        code = ptx(
            triton_lif._forward_kernel, dtype, INPUT_DECAY=input_decay, SOFT_RESET=False,
            STORE_H=True, F64=dtype == "fp64", BLOCK=32,
        )  # fmt: skip
        assert not re.search(r"\bfma\.", code)
        divisions = set(re.findall(r"\bdiv\.[a-z0-9.]+", code))
        assert divisions == ({f"div.rn.f{dtype[2:]}"} if input_decay else set())
        for surrogate in range(5):
            ptx(
                triton_lif._backward_kernel, dtype, INPUT_DECAY=input_decay, SOFT_RESET=True,
                RESET_GRAD=surrogate % 2 == 0, KEEP_STATE=surrogate != 3, HAS_GRAD_S=surrogate != 1,
                SURROGATE=surrogate, F64=dtype == "fp64", BLOCK=32,
            )  # fmt: skip
