"""A bundle is code: which bundles medseg runs without being told to trust them.

A bundle's configs hold Python expressions (``$...``) and may import code from its ``scripts/``
folder; running a bundle runs that code with the user's rights. medseg runs, without asking, only
bundles in the folders it finds bundles in by name (:data:`medseg.bundles.BUILTIN_BUNDLES` and
:data:`medseg.bundles.USER_BUNDLES`); any other bundle folder needs ``--trust``.
"""

from __future__ import annotations

from collections.abc import Callable

from medseg.bundles import BUILTIN_BUNDLES, USER_BUNDLES, Bundle
from medseg.errors import MedsegError

TRUSTED_FOLDERS = (BUILTIN_BUNDLES, USER_BUNDLES)


def is_trusted(bundle: Bundle) -> bool:
    """Whether the bundle lies inside one of the trusted bundle folders (symlinks resolved)."""
    root = bundle.root.resolve()
    return any(root.is_relative_to(folder.resolve()) for folder in TRUSTED_FOLDERS)


def check_trusted(bundle: Bundle, *, trust: bool, say: Callable[[str], None]) -> None:
    """Refuse a bundle from outside the trusted folders unless ``trust``; with it, say whose code runs.

    Raises:
        MedsegError: the bundle is outside the trusted folders and ``trust`` is False.
    """
    if is_trusted(bundle):
        return
    if not trust:
        folders = " or ".join(str(folder) for folder in TRUSTED_FOLDERS)
        raise MedsegError(
            f"bundle is outside {folders}; a bundle's configs run Python code: read them, then pass `trust=True`",
            bundle.root.resolve(),
        )
    say(f"running bundle code from {bundle.root.resolve()} (`trust=True`)")
