"""S2 cell ids, tokens, hierarchy and geometry, vectorised in numpy.

A re-implementation of the S2 geometry library's cell ids (the quadratic projection, as in
the C++ library and ``s2sphere``) on arrays: lat/lon -> unit vector -> cube face and (u, v)
-> (s, t) -> leaf (i, j) -> position along the face's Hilbert curve (a lookup table maps 8
bits of i and 8 bits of j at a time) -> 64-bit id. Ids are bit-identical to
``s2sphere.CellId.from_lat_lng(LatLng.from_degrees(lat, lon)).parent(level).id()``;
tests/geo check that on 100k+ points including poles, the antimeridian and face edges.

Id layout (uint64): 3 face bits, then 2 bits per level of Hilbert position, then a 1 bit
(the "lsb") whose position encodes the level, then zeros. A level-L cell covers the leaf
ids in [id - lsb + 1, id + lsb - 1] with lsb = 4 ** (30 - L).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.geo.validate import to_numpy, validate_latlon

MAX_LEVEL = 30
_MAX_SIZE = 1 << MAX_LEVEL  # leaf cells per face side
_SWAP, _INVERT = 1, 2  # Hilbert orientation bits
_U64 = np.uint64


def _build_lookup_4() -> tuple[np.ndarray, np.ndarray]:
    """The S2 library's 4-bit Hilbert tables.

    lookup_pos[(i4 << 6) | (j4 << 2) | orientation] = (pos8 << 2) | new_orientation and
    lookup_ij, its inverse. 4 x 256 entries, built by the same recursion as the library.
    """
    pos_to_ij = ((0, 1, 3, 2), (0, 2, 3, 1), (3, 2, 0, 1), (3, 1, 0, 2))
    pos_to_orientation = (_SWAP, 0, 0, _INVERT | _SWAP)
    lookup_pos = np.zeros(1 << 10, np.int64)
    lookup_ij = np.zeros(1 << 10, np.int64)

    def fill(level: int, i: int, j: int, orig: int, pos: int, orientation: int) -> None:
        if level == 4:
            ij = (i << 4) + j
            lookup_pos[(ij << 2) + orig] = (pos << 2) + orientation
            lookup_ij[(pos << 2) + orig] = (ij << 2) + orientation
            return
        r = pos_to_ij[orientation]
        for index in range(4):
            fill(level + 1, (i << 1) + (r[index] >> 1), (j << 1) + (r[index] & 1), orig,
                 (pos << 2) + index, orientation ^ pos_to_orientation[index])

    for orientation in range(4):
        fill(0, 0, 0, orientation, 0, orientation)
    return lookup_pos, lookup_ij


def _build_lookup_8(lookup_pos4: np.ndarray) -> np.ndarray:
    """An 8-bit table (2**18 entries) composed from two 4-bit steps: halves the passes.

    index = (i8 << 10) | (j8 << 2) | orientation -> (pos16 << 2) | new_orientation.
    """
    idx = np.arange(1 << 18, dtype=np.int64)
    i8, j8, orientation = idx >> 10, (idx >> 2) & 0xFF, idx & 3
    hi = lookup_pos4[((i8 >> 4) << 6) | ((j8 >> 4) << 2) | orientation]
    lo = lookup_pos4[((i8 & 15) << 6) | ((j8 & 15) << 2) | (hi & 3)]
    return ((hi >> 2) << 10) | ((lo >> 2) << 2) | (lo & 3)


_LOOKUP_POS4, _LOOKUP_IJ4 = _build_lookup_4()
_LOOKUP_POS8 = _build_lookup_8(_LOOKUP_POS4)

_CHUNK = 1 << 16  # points per block in s2_cell_ids: temporaries stay in cache

# --------------------------------------------------------------------------- lat/lon -> id
def s2_cell_ids(lat: Any, lon: Any, level: int = MAX_LEVEL) -> np.ndarray:
    """S2 cell ids of points at one level.

    lat, lon: degrees, same shape (e.g. [N]); numpy arrays, tensors or lists. Validated
    (InputError names the first bad row). level: 0 (6 face cells) .. 30 (leaf cells, ~1 cm).
    Returns uint64 ids with the input's shape, equal to s2sphere's
    ``CellId.from_lat_lng(LatLng.from_degrees(lat, lon)).parent(level).id()``.
    """
    level = _checked_level(level)
    validate_latlon(lat, lon)
    lat, lon = to_numpy(lat), to_numpy(lon)
    flat_lat, flat_lon = lat.ravel(), lon.ravel()
    out = np.empty(flat_lat.size, dtype=_U64)
    for start in range(0, flat_lat.size, _CHUNK):
        block = slice(start, start + _CHUNK)
        face, i, j = _latlon_to_face_ij(flat_lat[block], flat_lon[block])
        out[block] = _parent_unchecked(_face_ij_to_leaf_id(face, i, j), level)
    return out.reshape(lat.shape)


def _latlon_to_face_ij(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat lat/lon [N] degrees -> face [N] int64 and leaf coordinates i, j [N] int64."""
    # Same operations as s2sphere (radians, then cos/sin products) so that the floating
    # point results, and hence the leaf cells, are identical.
    phi, theta = np.radians(lat), np.radians(lon)
    cos_phi = np.cos(phi)
    x, y, z = np.cos(theta) * cos_phi, np.sin(theta) * cos_phi, np.sin(phi)
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    # Axis of the largest |component| with S2's tie-breaking (x/y ties go to y, ties with
    # z to z), as booleans: cheaper than nested np.where on int arrays.
    x_gt_y = ax > ay
    is_x = x_gt_y & (ax > az)
    is_y = ~x_gt_y & (ay > az)
    # Positive faces 0, 1, 2: (u, v) = (y/x, z/x), (-x/y, z/y), (-x/z, -y/z); the negative
    # faces 3, 4, 5 use the same ratios with u and v swapped (S2's ValidFaceXYZtoUV).
    den = np.where(is_x, x, np.where(is_y, y, z))
    p = np.where(is_x, y, -x) / den
    q = np.where(is_x | is_y, z, -y) / den
    neg = den < 0
    u, v = np.where(neg, q, p), np.where(neg, p, q)
    face = 2 - 2 * is_x.astype(np.int64) - is_y + 3 * neg
    return face, _uv_to_ij(u), _uv_to_ij(v)


def _uv_to_ij(u: np.ndarray) -> np.ndarray:
    """Quadratic projection u -> s in [0, 1], then the leaf index floor(2**30 * s)."""
    half = 0.5 * np.sqrt(1.0 + 3.0 * np.abs(u))  # 1 - 3u == 1 + 3|u| exactly for u < 0
    s = np.where(u >= 0, half, 1.0 - half)
    return np.clip(np.floor(_MAX_SIZE * s), 0, _MAX_SIZE - 1).astype(np.int64)


def _face_ij_to_leaf_id(face: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Leaf cell ids [N] uint64 from face [N] and leaf coordinates i, j [N] (< 2**30)."""
    pos = np.zeros(face.shape, np.int64)  # Hilbert position, 60 bits
    bits = face & _SWAP  # odd faces start with swapped axes
    for k in (3, 2, 1, 0):  # 8 bits of i and j per step, most significant first
        shift = 8 * k
        bits = bits | (((i >> shift) & 0xFF) << 10) | (((j >> shift) & 0xFF) << 2)
        bits = _LOOKUP_POS8[bits]
        pos |= (bits >> 2) << (2 * shift)
        bits &= _SWAP | _INVERT
    return (face.astype(_U64) << _U64(61)) | (pos.astype(_U64) << _U64(1)) | _U64(1)


# --------------------------------------------------------------------------- hierarchy
def _lsb_for_level(level: Any) -> np.ndarray:
    return _U64(1) << (_U64(2) * (_U64(MAX_LEVEL) - np.asarray(level, dtype=_U64)))


def _parent_unchecked(ids: np.ndarray, level: Any) -> np.ndarray:
    lsb = _lsb_for_level(level)
    return (ids & ~(lsb - _U64(1))) | lsb


def _lowest_bit(ids: np.ndarray) -> np.ndarray:
    return ids & (~ids + _U64(1))


def _checked_level(level: Any) -> int:
    if isinstance(level, (bool, np.bool_)) or not isinstance(level, (int, np.integer)):
        raise InputError(f"S2 level must be an integer in 0..30, got {level!r}")
    if not 0 <= int(level) <= MAX_LEVEL:
        raise InputError(f"S2 level must be in 0..30, got {level}")
    return int(level)


def _checked_ids(ids: Any) -> np.ndarray:
    """uint64 ids; raises InputError naming the first value that is not a valid cell id."""
    try:
        arr = np.asarray(ids, dtype=_U64)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"S2 cell ids must be unsigned 64-bit integers, got {ids!r:.80}") from None
    low = _lowest_bit(arr)
    # Valid: face <= 5, and the lowest set bit at an even position (bit 0, 2, ..., 60).
    ok = (arr != 0) & ((arr >> _U64(61)) <= _U64(5)) & ((low & _U64(0x1555555555555555)) != 0)
    if not ok.all():
        flat = int(np.flatnonzero(~ok.ravel())[0])
        raise InputError(
            f"invalid S2 cell id at row {flat}: {int(arr.ravel()[flat])} (a cell id has a face "
            f"0..5 in its top 3 bits and its lowest set bit at an even position)"
        )
    return arr


def cell_level(ids: Any) -> np.ndarray:
    """Level 0..30 of each cell id (int64 array with the input's shape)."""
    ids = _checked_ids(ids)
    # The lowest set bit is 4 ** (30 - level); its log2 is exact in float64.
    return MAX_LEVEL - (np.log2(_lowest_bit(ids).astype(np.float64)).astype(np.int64) >> 1)


def cell_parent(ids: Any, level: int) -> np.ndarray:
    """Ancestor of each cell at ``level`` (uint64, input's shape).

    ``level`` must not be finer than any cell's own level; a cell is its own parent at its
    level (as in s2sphere).
    """
    level = _checked_level(level)
    ids = _checked_ids(ids)
    levels = cell_level(ids)
    if (levels < level).any():
        row = int(np.flatnonzero((levels < level).ravel())[0])
        raise InputError(
            f"cell at row {row} has level {int(levels.ravel()[row])}, finer than the "
            f"requested parent level {level}; a parent level must be <= the cell's level"
        )
    return _parent_unchecked(ids, level)


def cell_children(ids: Any) -> np.ndarray:
    """The 4 children of each cell, in Hilbert order: shape [..., 4] uint64.

    Raises InputError for leaf cells (level 30 has no children).
    """
    ids = _checked_ids(ids)
    levels = cell_level(ids)
    if (levels == MAX_LEVEL).any():
        row = int(np.flatnonzero((levels == MAX_LEVEL).ravel())[0])
        raise InputError(f"cell at row {row} is a leaf (level 30) and has no children")
    lsb = _lowest_bit(ids)
    child_lsb = lsb >> _U64(2)
    # Children tile the parent's leaf range [id - lsb + 1, id + lsb - 1] in order.
    k = np.arange(4, dtype=_U64)
    return (ids - lsb)[..., None] + child_lsb[..., None] * (_U64(2) * k + _U64(1))


def cell_range(ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) leaf cell ids covered by each cell: a point is in the cell iff its
    level-30 id is in [min, max]."""
    ids = _checked_ids(ids)
    lsb = _lowest_bit(ids)
    return ids - (lsb - _U64(1)), ids + (lsb - _U64(1))


# --------------------------------------------------------------------------- tokens
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.full(256, -1, dtype=np.int64)
for _k, _c in enumerate(b"0123456789abcdef"):
    _NIBBLE[_c] = _k
for _k, _c in enumerate(b"ABCDEF"):
    _NIBBLE[_c] = 10 + _k


def cell_id_to_token(ids: Any) -> Any:
    """S2 tokens: the id in lower-case hex with trailing zeros removed ("X" for id 0).

    ids: uint64 scalar or array. Returns a str for a scalar, else a numpy str array of the
    same shape. Equal to s2sphere's ``CellId(id).to_token()``.
    """
    arr = np.asarray(ids, dtype=_U64)
    flat = arr.ravel()
    be = flat.astype(">u8").view(np.uint8).reshape(-1, 8)  # big-endian bytes
    nibbles = np.stack([be >> 4, be & 15], axis=-1).reshape(-1, 16)
    chars = _HEX[nibbles]
    last = 15 - np.argmax(nibbles[:, ::-1] != 0, axis=1)  # index of the last non-zero nibble
    chars[np.arange(16) > last[:, None]] = 0  # trailing NULs are dropped by the 'S16' view
    tokens = chars.view("S16").ravel().astype("U16")
    tokens[flat == 0] = "X"
    tokens = tokens.reshape(arr.shape)
    return str(tokens) if arr.ndim == 0 else tokens


def token_to_cell_id(tokens: Any) -> Any:
    """Cell ids (uint64) from S2 tokens; scalar in, int out; array in, array out.

    Accepts upper- or lower-case hex of 1..16 characters ("X" means id 0). Raises
    InputError naming the first malformed token. The result is not checked to be a valid
    cell id (use ``cell_level`` for that).
    """
    arr = np.asarray(tokens)
    if arr.dtype.kind not in "US":
        arr = arr.astype(str)
    flat = arr.ravel().astype("U")
    lengths = np.char.str_len(flat)
    is_x = flat == "X"
    try:
        raw = np.char.ljust(np.where(is_x, "0", flat), 16, "0").astype("S16")
    except UnicodeEncodeError:
        raw = None
    nib = None
    if raw is not None and raw.dtype.itemsize == 16:
        nib = _NIBBLE[raw.view(np.uint8).reshape(-1, 16)]
    bad = (lengths < 1) | (lengths > 16)
    bad = bad | (np.ones(flat.shape, bool) if nib is None else (nib < 0).any(axis=1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"invalid S2 token at row {row}: {str(flat[row])!r} (a token is 1-16 hex "
            f"characters, e.g. '47a1cbd')"
        )
    packed = ((nib[:, 0::2] << 4) | nib[:, 1::2]).astype(np.uint8)  # [N, 8] bytes
    ids = packed.view(">u8").ravel().astype(_U64).reshape(arr.shape)
    return int(ids) if arr.ndim == 0 else ids


# --------------------------------------------------------------------------- geometry
def _leaf_id_to_face_ij(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ids [N] uint64 -> face, i, j [N] int64 of the leaf at the id's position."""
    face = (ids >> _U64(61)).astype(np.int64)
    pos = ((ids >> _U64(1)) & _U64((1 << 60) - 1)).astype(np.int64)
    i = np.zeros_like(pos)
    j = np.zeros_like(pos)
    bits = face & _SWAP
    for k in range(7, -1, -1):  # 8 bits of position (4 of i, 4 of j) per step
        bits = bits + (((pos >> (8 * k)) & 0xFF) << 2)
        bits = _LOOKUP_IJ4[bits]
        i |= (bits >> 6) << (4 * k)
        j |= ((bits >> 2) & 15) << (4 * k)
        bits &= _SWAP | _INVERT
    return face, i, j


def _st_to_uv(s: np.ndarray) -> np.ndarray:
    """Inverse of the quadratic projection, as in S2 (STtoUV)."""
    return np.where(s >= 0.5, (1.0 / 3.0) * (4.0 * s * s - 1.0),
                    (1.0 / 3.0) * (1.0 - 4.0 * (1.0 - s) * (1.0 - s)))


def _face_uv_to_latlon(face: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on the cube (face, u, v) -> (lat, lon) degrees (S2's FaceUVtoXYZ)."""
    one = np.ones_like(u)
    # Columns: face 0 (1, u, v), 1 (-u, 1, v), 2 (-u, -v, 1), 3 (-1, -v, -u),
    # 4 (v, -1, -u), 5 (v, u, -1).
    x = np.choose(face, [one, -u, -u, -one, v, v])
    y = np.choose(face, [u, one, -v, -v, -one, u])
    z = np.choose(face, [v, v, one, -u, -u, -one])
    lat = np.degrees(np.arctan2(z, np.sqrt(x * x + y * y)))
    lon = np.degrees(np.arctan2(y, x))
    return lat, lon


def _cell_face_ij_bounds(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """face, i0, j0 (lower-left leaf of each cell) and the cell size in leaves."""
    face, i, j = _leaf_id_to_face_ij(ids.ravel())
    size = np.int64(1) << (MAX_LEVEL - cell_level(ids.ravel()))
    return face, i & ~(size - 1), j & ~(size - 1), size


def cell_center_latlon(ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Centre of each cell in (s, t) space as (lat, lon) degrees, each with ids' shape.

    Equal (to ~1e-13 degrees) to s2sphere's ``CellId(id).to_lat_lng()``. This is the S2
    cell centre, not the centroid of any data in it (see partition.Partition for that).
    """
    ids = _checked_ids(ids)
    face, i0, j0, size = _cell_face_ij_bounds(ids)
    scale = 0.5 / _MAX_SIZE  # centre in half-leaf units: 2 * i0 + size
    u = _st_to_uv(scale * (2 * i0 + size).astype(np.float64))
    v = _st_to_uv(scale * (2 * j0 + size).astype(np.float64))
    lat, lon = _face_uv_to_latlon(face, u, v)
    return lat.reshape(ids.shape), lon.reshape(ids.shape)


def cell_polygons(ids: Any) -> np.ndarray:
    """Vertices of each cell: float64 [N, 4, 2] of (lat, lon) degrees, counter-clockwise.

    Same vertices as s2sphere's ``Cell(CellId(id)).get_vertex(k)`` for k = 0..3. Edges
    are great-circle arcs; a cell crossing the antimeridian has vertices on both sides
    (lon near +180 and -180), so map code should unwrap longitudes before drawing.
    """
    ids = _checked_ids(ids).ravel()
    face, i0, j0, size = _cell_face_ij_bounds(ids)
    scale = 1.0 / _MAX_SIZE
    u_lo, u_hi = _st_to_uv(scale * i0.astype(float)), _st_to_uv(scale * (i0 + size).astype(float))
    v_lo, v_hi = _st_to_uv(scale * j0.astype(float)), _st_to_uv(scale * (j0 + size).astype(float))
    # Vertex k uses u[(k >> 1) ^ (k & 1)] and v[k >> 1]: (lo,lo), (hi,lo), (hi,hi), (lo,hi).
    us = np.stack([u_lo, u_hi, u_hi, u_lo], axis=1)
    vs = np.stack([v_lo, v_lo, v_hi, v_hi], axis=1)
    lat, lon = _face_uv_to_latlon(np.repeat(face, 4), us.ravel(), vs.ravel())
    return np.stack([lat, lon], axis=-1).reshape(-1, 4, 2)


def cell_edge_km(level: int) -> float:
    """Rough edge length of a level-``level`` cell in km (average; for labels only)."""
    level = _checked_level(level)
    # 6 * 4**level cells share the Earth's surface (4 pi R^2); edge = sqrt(area).
    return math.sqrt(4 * math.pi * 6371.0088**2 / (6 * 4**level))
