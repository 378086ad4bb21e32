# Copyright (c) mmot contributors. All rights reserved.
"""Version information of mmot."""

__version__ = '0.1.0'


def parse_version_info(version_str: str) -> tuple:
    """Parse a version string into a tuple.

    Args:
        version_str (str): The version string, e.g. ``'0.1.0'`` or
            ``'0.1.0rc1'``.

    Returns:
        tuple: The version info, e.g. ``(0, 1, 0)`` or ``(0, 1, 0, 'rc1')``.
    """
    version_info = []
    for part in version_str.split('.'):
        if part.isdigit():
            version_info.append(int(part))
        elif 'rc' in part:
            num, _, rc = part.partition('rc')
            version_info.append(int(num))
            version_info.append(f'rc{rc}')
        else:
            raise ValueError(f'Invalid version string: {version_str!r}')
    return tuple(version_info)


version_info = parse_version_info(__version__)

__all__ = ['__version__', 'version_info', 'parse_version_info']
