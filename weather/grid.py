"""KMA short-term forecast (DFS) grid: latitude/longitude <-> grid cell (nx, ny).

The Korea Meteorological Administration publishes its village forecast on a
5 km Lambert conformal conic grid; these are the constants and the formulas of
its reference implementation.
"""

from __future__ import annotations

import math

RE = 6371.00877  # Earth radius, km
GRID = 5.0  # grid spacing, km
SLAT1 = 30.0  # standard parallel 1, degrees
SLAT2 = 60.0  # standard parallel 2, degrees
OLON = 126.0  # reference longitude, degrees
OLAT = 38.0  # reference latitude, degrees
XO = 43  # grid x of the reference point
YO = 136  # grid y of the reference point

# The published grid spans these cells; a position outside is not in Korea's forecast.
NX_MAX = 149
NY_MAX = 253

_DEGRAD = math.pi / 180.0
_re = RE / GRID
_slat1 = SLAT1 * _DEGRAD
_slat2 = SLAT2 * _DEGRAD
_olon = OLON * _DEGRAD
_olat = OLAT * _DEGRAD
_sn = math.log(math.cos(_slat1) / math.cos(_slat2)) / math.log(
    math.tan(math.pi * 0.25 + _slat2 * 0.5) / math.tan(math.pi * 0.25 + _slat1 * 0.5)
)
_sf = math.tan(math.pi * 0.25 + _slat1 * 0.5) ** _sn * math.cos(_slat1) / _sn
_ro = _re * _sf / math.tan(math.pi * 0.25 + _olat * 0.5) ** _sn


def to_grid(latitude: float, longitude: float) -> tuple[int, int]:
    """The KMA grid cell (nx, ny) containing ``latitude``, ``longitude`` (degrees)."""
    ra = _re * _sf / math.tan(math.pi * 0.25 + latitude * _DEGRAD * 0.5) ** _sn
    theta = longitude * _DEGRAD - _olon
    if theta > math.pi:
        theta -= 2.0 * math.pi
    if theta < -math.pi:
        theta += 2.0 * math.pi
    theta *= _sn
    nx = math.floor(ra * math.sin(theta) + XO + 0.5)
    ny = math.floor(_ro - ra * math.cos(theta) + YO + 0.5)
    return nx, ny


def to_lat_lon(nx: int, ny: int) -> tuple[float, float]:
    """The latitude and longitude (degrees) of the centre of grid cell (nx, ny)."""
    xn = nx - XO
    yn = _ro - ny + YO
    ra = math.copysign(math.hypot(xn, yn), _sn)
    latitude = 2.0 * math.atan((_re * _sf / ra) ** (1.0 / _sn)) - math.pi * 0.5
    if xn == 0:
        theta = 0.0
    elif yn == 0:
        theta = math.copysign(math.pi * 0.5, xn)
    else:
        theta = math.atan2(xn, yn)
    longitude = theta / _sn + _olon
    return latitude / _DEGRAD, longitude / _DEGRAD


def in_grid(nx: int, ny: int) -> bool:
    """Whether (nx, ny) is a cell of the published KMA forecast grid."""
    return 1 <= nx <= NX_MAX and 1 <= ny <= NY_MAX
