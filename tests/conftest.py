"""pytest configuration of mmot's suite."""
import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'dropin: the README fragment on unmodified mmpretrain configs (one '
        'per head class), stage 1 and stage 2 on a few tiny batches')


@pytest.fixture
def one_thread():
    """One torch thread, as the torchrun workers (OMP_NUM_THREADS=1) and the
    recorded references: the reduction order, so the floats, match."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
