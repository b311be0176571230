"""Training pairs from Cross-Season Correspondence Dataset (CSCD) ``.mat`` files."""

from __future__ import annotations

import glob as globlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from .correspondences import read_correspondences
from .pairs import PairDataset, load_image

logger = logging.getLogger(__name__)


def resolve_image(image_root: Path, path: str, mat: Path | str = "") -> Path:
    """Find ``path`` (as stored in a CSCD file) under ``image_root``: as given, then with
    leading folders stripped one by one (absolute paths from another machine, ``slice*/...``)."""
    parts = PurePosixPath(path.replace("\\", "/")).parts
    parts = [p for p in parts if p not in ("/", "")]
    candidates = [Path(path)] if Path(path).is_absolute() else []
    candidates += [image_root.joinpath(*parts[k:]) for k in range(len(parts))]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(
        f"{mat}: image {path!r} not found under {image_root} (tried {[str(c) for c in candidates]})"
    )


class CSCDPairs(PairDataset):
    """Cross-Season Correspondence Dataset files: ``files`` is a glob relative to ``root``
    (default ``**/*.mat``) or a list of paths; image paths resolve under ``image_root``
    (default ``root``). Image a is ``im_i_path``; ``condition`` is image b's condition, or a
    mapping from ``im_j_path`` to condition."""

    def __init__(
        self,
        root: str | Path,
        files: str | Sequence[str | Path] = "**/*.mat",
        image_root: str | Path | None = None,
        condition: str | Mapping[str, str] = "",
        **kw,
    ):
        super().__init__(**kw)
        self.root = Path(root)
        self.image_root = Path(image_root) if image_root is not None else self.root
        if isinstance(files, str):
            self.files = sorted(
                Path(p) for p in globlib.glob(str(self.root / files), recursive=True)
            )
        else:
            self.files = [self.root / f for f in files]
        if not self.files:
            raise FileNotFoundError(f"no correspondence files {files!r} under {self.root}")
        self.condition = condition
        logger.info("CSCD pairs: %d files under %s", len(self.files), self.root)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index, rng):
        mat = self.files[index]
        c = read_correspondences(mat)
        img_a = load_image(resolve_image(self.image_root, c.im_i_path, mat))
        img_b = load_image(resolve_image(self.image_root, c.im_j_path, mat))
        cond = self.condition
        cond = cond if isinstance(cond, str) else cond.get(c.im_j_path, "")
        return img_a, img_b, c.pt_i, c.pt_j, c.im_i_path, c.im_j_path, cond
