"""pytest configuration of mmot's suite."""


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'dropin: the README fragment on unmodified mmpretrain configs (one '
        'per head class), stage 1 and stage 2 on a few tiny batches')
