"""Ground truth of how sized items fit in the synthetic store, and the size-driven return model.

Sizes are positions on a ladder: apparel ``XS``=0 … ``XL``=4, shoes their number (6–13). A shopper's
*usual* size is the stated ``apparel_size`` / ``shoe_size``; the *true* fit also holds the shopper's
own offset ``fit_noise`` (size units, + means their usual size fits them large) and, for shoes, wide
feet in a regular-fit shoe (fits 0.7 of a size small). A brand's ``sizing_bias`` (size units, + runs
large) shifts every item of the brand. Buying size ``s`` gives a fit error

    err = sizing_bias + fit_noise + (s - usual) [- 0.7 for wide feet in a regular shoe] + N(0, 0.2)

and the item comes back as ``too_small`` (err < 0) or ``too_large`` (err > 0) with probability 0.45
when ``|err| > 0.55``. :func:`size_return_probability` is that probability in closed form, the
oracle the fit benchmark scores suggested sizes against.
"""

from __future__ import annotations

import math

from shopkeep.simulate import taxonomy as tx
from shopkeep.simulate.catalog import FITS, CatalogArrays
from shopkeep.simulate.shoppers import Shopper

__all__ = [
    "FIT_NOISE_SD",
    "RETURN_IF_MISFIT",
    "TOLERANCE",
    "WIDE_PENALTY",
    "fit_error_mean",
    "is_sized",
    "size_return_probability",
    "true_size",
    "usual_size",
]

#: Per-purchase noise of the fit error (size units).
FIT_NOISE_SD = 0.2
#: A fit error beyond this many size units is a misfit.
TOLERANCE = 0.55
#: Probability that a misfit is returned (for its size).
RETURN_IF_MISFIT = 0.45
#: How much smaller a regular-fit shoe fits on wide feet (size units).
WIDE_PENALTY = 0.7


def is_sized(cat: CatalogArrays, i: int) -> bool:
    """Whether item row ``i`` comes in apparel or shoe sizes."""
    return tx.TYPES[int(cat.type_idx[i])].variant in ("apparel_size", "shoe_size")


def usual_size(s: Shopper, cat: CatalogArrays, i: int) -> int:
    """The shopper's stated size for item row ``i``'s size ladder (apparel index or shoe number)."""
    variant = tx.TYPES[int(cat.type_idx[i])].variant
    return tx.APPAREL_SIZES.index(s.apparel_size) if variant == "apparel_size" else s.shoe_size


def fit_error_mean(s: Shopper, cat: CatalogArrays, i: int) -> float:
    """Mean fit error (size units; < 0 too small) of shopper ``s`` wearing item row ``i`` (a sized item)."""
    err = cat.brands[int(cat.brand[i])].sizing_bias + s.fit_noise + float(cat.attrs["size"][i] - usual_size(s, cat, i))
    if (s.wide_feet and tx.TYPES[int(cat.type_idx[i])].variant == "shoe_size"
            and FITS[int(cat.attrs["fit"][i])] != "wide"):
        err -= WIDE_PENALTY
    return err


def true_size(s: Shopper, cat: CatalogArrays, i: int) -> float:
    """The (fractional) size on item row ``i``'s ladder that fits ``s`` exactly in that brand and fit."""
    return float(cat.attrs["size"][i]) - fit_error_mean(s, cat, i)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def size_return_probability(s: Shopper, cat: CatalogArrays, i: int) -> float:
    """P(item row ``i`` bought by ``s`` comes back too small or too large); 0 for unsized items.

    >>> round(0.45 * (1 - _phi(0.55 / 0.2) + _phi(-0.55 / 0.2)), 4)  # a perfect fit still misfits rarely
    0.0027
    """
    if not is_sized(cat, i):
        return 0.0
    mu = fit_error_mean(s, cat, i)
    misfit = _phi((-TOLERANCE - mu) / FIT_NOISE_SD) + 1.0 - _phi((TOLERANCE - mu) / FIT_NOISE_SD)
    return RETURN_IF_MISFIT * misfit
