"""Weight entanglement: a subnet run through the supernet equals the standalone model holding
the supernet's leading slices, in its logits, its spikes, its batch-norm statistics and its
gradients."""

import random

import pytest
import torch

from neurojoule.models import build_model
from neurojoule.models.elastic import ElasticModel
from neurojoule.neuron import LIF
from neurojoule.search.space import load_space

SPACE = load_space("spikformer-fmnist-cpu")


@pytest.fixture(scope="module")
def elastic():
    torch.manual_seed(0)
    model = ElasticModel(SPACE.model, SPACE.supernet_options())
    with torch.no_grad():  # batch-norm statistics other than the initial 0 and 1
        for module in model.supernet.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _subnets(count: int) -> list[dict]:
    rng = random.Random(0)
    drawn = [SPACE.decode(SPACE.sample(rng)) for _ in range(count - 2)]
    return [SPACE.extreme(largest=False), SPACE.extreme(largest=True), *drawn]


def _spikes(model: torch.nn.Module, images: torch.Tensor, run) -> dict[str, torch.Tensor]:
    """Every LIF layer's output while `run(images)` runs `model`."""
    seen = {}
    hooks = [
        module.register_forward_hook(lambda m, i, out, name=name: seen.__setitem__(name, out))
        for name, module in model.named_modules()
        if isinstance(module, LIF)
    ]
    with torch.no_grad():
        logits = run(images)
    for hook in hooks:
        hook.remove()
    return {"logits": logits, **seen}


@pytest.mark.parametrize("subnet", _subnets(20), ids=lambda s: str(sorted(s.items())))
def test_a_subnet_gives_the_logits_and_spikes_of_its_extracted_network(elastic, subnet):
    images = torch.rand(3, 1, 28, 28)
    through = _spikes(elastic.bound(subnet), images, lambda x: elastic(x, subnet))
    extracted = elastic.extract(subnet).eval()
    alone = _spikes(extracted, images, extracted)
    assert through.keys() == alone.keys() and len(through) > 10
    for name, value in through.items():
        assert torch.equal(value, alone[name]), name
    # with gradients on, the subnet runs through freshly sliced views: the same logits
    assert torch.equal(elastic(images, subnet).detach(), alone["logits"])
    # the standalone network is the registry's class, built with the subnet's options
    assert type(extracted) is type(build_model(SPACE.model, **elastic.options(subnet)))


def test_every_subnet_tensor_is_the_leading_slice_of_the_supernet_tensor(elastic):
    subnet = SPACE.extreme(largest=False)
    extracted = elastic.extract(subnet).state_dict()
    full = elastic.supernet.state_dict()
    for name, value in extracted.items():
        corner = full[name][tuple(slice(0, n) for n in value.shape)]
        assert torch.equal(value, corner), name
    assert extracted["head.weight"].shape == (10, 64)  # 10 classes by the smallest dim
    assert "blocks.1.mlp.fc1.module.0.weight" not in extracted  # depth 1: one block


def test_training_through_a_subnet_updates_only_its_slices(elastic):
    subnet = {**SPACE.extreme(largest=False), "embed_dim": 96, "mlp_ratio": (3.5,)}
    standalone = elastic.extract(subnet).train()
    elastic.train()
    try:
        before = {k: v.clone() for k, v in elastic.supernet.state_dict().items()}
        images, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
        loss = torch.nn.functional.cross_entropy(elastic(images, subnet), labels)
        loss.backward()
        torch.nn.functional.cross_entropy(standalone(images), labels).backward()
    finally:
        elastic.eval()
    fc1 = "blocks.0.mlp.fc1.module.0.weight"  # [hidden, dim]: 336 x 96 of 512 x 128
    grad = dict(elastic.supernet.named_parameters())[fc1].grad
    expected = dict(standalone.named_parameters())[fc1].grad
    assert torch.equal(grad[:336, :96], expected)
    assert not grad[336:].any() and not grad[:, 96:].any()
    bn = "blocks.0.mlp.fc1.module.1.running_mean"
    after = elastic.supernet.state_dict()[bn]
    assert torch.equal(after[:336], standalone.state_dict()[bn])  # updated in place
    assert torch.equal(after[336:], before[bn][336:])  # the rest untouched
    elastic.supernet.zero_grad(set_to_none=True)
    with torch.no_grad():
        for name, value in before.items():
            elastic.supernet.state_dict()[name].copy_(value)


def test_a_subnet_larger_than_the_supernet_is_refused(elastic):
    with pytest.raises(ValueError, match="does not fit in the supernet: its .* has shape"):
        elastic(torch.rand(1, 1, 28, 28), {**SPACE.extreme(largest=True), "embed_dim": 256})
    with pytest.raises(ValueError, match="unknown SpikformerConfig fields \\['width'\\]"):
        elastic.template({"width": 3})


def test_the_kept_evaluation_views_follow_updates_of_the_supernet():
    torch.manual_seed(1)
    elastic = ElasticModel(SPACE.model, SPACE.supernet_options()).eval()
    subnet = SPACE.extreme(largest=False)
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        elastic(images, subnet)  # binds and keeps the views
        for parameter in elastic.supernet.parameters():
            parameter.mul_(0.5)  # as an optimizer step does, in place
        assert torch.equal(elastic(images, subnet), elastic.extract(subnet).eval()(images))
        elastic.double()  # new tensors: the kept views must not be used
        assert torch.equal(
            elastic(images.double(), subnet), elastic.extract(subnet).eval()(images.double())
        )
