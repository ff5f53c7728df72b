import pytest
import torch


@pytest.fixture(autouse=True)
def _two_threads_and_seed():
    """Every test runs on the machine's 2 cores with a fixed seed."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield
