"""The KMA DFS grid conversion against known points, and its inverse."""

from __future__ import annotations

import pytest

from weather.grid import NX_MAX, NY_MAX, in_grid, to_grid, to_lat_lon


@pytest.mark.parametrize(
    ("place", "latitude", "longitude", "cell"),
    [
        ("Seoul City Hall", 37.5665, 126.9780, (60, 127)),
        ("Busan City Hall", 35.1796, 129.0756, (98, 76)),
        ("Jeju", 33.4996, 126.5312, (53, 38)),
        ("Daejeon", 36.3504, 127.3845, (67, 100)),
    ],
)
def test_known_points(place, latitude, longitude, cell):
    assert to_grid(latitude, longitude) == cell, place


def test_every_cell_round_trips():
    for nx in range(1, NX_MAX + 1):
        for ny in range(1, NY_MAX + 1):
            assert to_grid(*to_lat_lon(nx, ny)) == (nx, ny)


def test_cell_centre_is_near_the_position():
    latitude, longitude = to_lat_lon(60, 127)
    assert abs(latitude - 37.5665) < 0.05 and abs(longitude - 126.9780) < 0.05


def test_in_grid_bounds():
    assert in_grid(1, 1) and in_grid(NX_MAX, NY_MAX)
    assert not in_grid(0, 1) and not in_grid(1, NY_MAX + 1)
