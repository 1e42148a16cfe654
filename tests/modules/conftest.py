import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

torch.set_num_threads(1)


@pytest.fixture
def model():
    from agentlab.modules.models import tiny_llama

    return tiny_llama(layers=3, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=96)


@pytest.fixture
def ids():
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, 96, (1, 72), generator=g)
