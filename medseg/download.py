"""``medseg download``: fetch a MONAI model-zoo bundle into the user's bundle folder, and check it.

The fetching is MONAI's own (:func:`monai.bundle.download`: the model zoo's hosting, NGC, GitHub
releases, Hugging Face, or any URL). The bundle lands in a staging folder beside
:data:`medseg.bundles.USER_BUNDLES` and moves into place only once checked: the model-zoo layout,
readable metadata with output labels, an inference config, and weights that load with
``torch.load(weights_only=True)``. Its source is recorded in ``.medseg-source``, which
``medseg bundles`` shows.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from medseg.bundles import LABELS_FIELD, SOURCE_FILE, USER_BUNDLES, Bundle
from medseg.errors import MedsegError
from medseg.weights import check_weights


def check_bundle(bundle: Bundle) -> None:
    """Check a downloaded bundle: inference config, output labels, weights loadable with ``weights_only``.

    Raises:
        MedsegError: naming the file that is missing or unusable.
    """
    bundle.config("inference")
    if not bundle.labels:
        raise MedsegError(f"metadata names no output labels ({LABELS_FIELD})", bundle.config("metadata"))
    check_weights(bundle.weights)


def download(name: str, *, version: str | None = None, url: str | None = None, target: Path = USER_BUNDLES) -> Bundle:
    """Download the bundle ``name`` (``version``, or the latest) into ``target``, check it, and return it.

    Args:
        name: the bundle's model-zoo name, e.g. ``spleen_ct_segmentation``.
        version: its version, or None for the latest.
        url: fetch this zip file instead of asking the model zoo (a mirror, or a ``file://`` URL).
        target: the folder to put it in (default ``$MEDSEG_BUNDLES`` or ``~/.medseg/bundles``).

    Raises:
        MedsegError: the bundle is already there, cannot be fetched, or fails :func:`check_bundle`.
    """
    from monai.bundle import download as monai_download

    final = target / name
    if final.exists():
        raise MedsegError("bundle already downloaded; remove the folder to fetch it again", final)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".medseg-download-", dir=target) as staging:
        try:
            monai_download(name=name, version=version, bundle_dir=staging, url=url, progress=False)
        except Exception as error:  # network, HTTP, archive: the library's own exception, as one line
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise MedsegError(f"cannot download bundle {name!r} ({reason})", url or name) from None
        fetched = Path(staging) / name
        if not (fetched / "configs" / "metadata.json").is_file():
            raise MedsegError(
                f"download holds no bundle {name!r} in the model-zoo layout (configs/metadata.json)", url or name
            )
        check_bundle(Bundle(fetched))
        source = url or f"MONAI model zoo: {name} {version or 'latest'}"
        (fetched / SOURCE_FILE).write_text(source + "\n", encoding="utf-8")
        shutil.move(fetched, final)
    return Bundle(final)
