import pytest


@pytest.fixture
def model():
    pytest.importorskip("transformers")
    from agentlab.modules.models import tiny_llama

    return tiny_llama(layers=3, hidden=64, heads=4, kv_heads=2, intermediate=128, vocab=96)


@pytest.fixture
def ids():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    return torch.randint(3, 96, (1, 72), generator=g)
