"""pytest configuration of mmot's suite."""
import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'dropin: the README fragment on unmodified mmpretrain configs (one '
        'per head class), stage 1 and stage 2 on a few tiny batches')
    config.addinivalue_line(
        'markers',
        'cuda: stage 2 on a GPU (skipped without CUDA; tools/gpu_smoke.sh)')


def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def one_thread():
    """One torch thread, as the torchrun workers (OMP_NUM_THREADS=1) and the
    recorded references: the reduction order, so the floats, match."""
    yield from _single_thread()


@pytest.fixture(scope='module')
def one_thread_module():
    """One torch thread for a whole module of tiny models and batches: one
    intra-op thread is faster, much faster on a busy 2-core machine. Use it
    with ``pytestmark = pytest.mark.usefixtures('one_thread_module')``."""
    yield from _single_thread()
