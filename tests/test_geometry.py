"""The one placement convention: R = Rx Ry Rz about the soma, then the node's position."""

import numpy as np
import pytest

from builder.core.geometry import node_angles, rotation_matrices, rotation_matrix, to_world


def test_quarter_turns_are_counter_clockwise():
    np.testing.assert_allclose(rotation_matrix(z=np.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(rotation_matrix(x=np.pi / 2) @ [0, 1, 0], [0, 0, 1], atol=1e-15)
    np.testing.assert_allclose(rotation_matrix(y=np.pi / 2) @ [0, 0, 1], [1, 0, 0], atol=1e-15)


def test_order_is_x_after_y_after_z():
    # z first: (1,0,0) -> (0,1,0); then x by 90 deg: (0,1,0) -> (0,0,1)
    r = rotation_matrix(x=np.pi / 2, z=np.pi / 2)
    np.testing.assert_allclose(r @ [1, 0, 0], [0, 0, 1], atol=1e-15)


def test_matrices_are_rotations():
    rng = np.random.default_rng(3)
    rot = rotation_matrices(rng.uniform(-7, 7, size=(50, 3)))
    eye = np.broadcast_to(np.eye(3), rot.shape)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_to_world_rotates_about_the_soma_then_moves_it():
    pts = np.array([[10.0, 20.0, 0.0], [10.0, 120.0, 0.0]])  # soma, a point 100 um up in y
    out = to_world(pts, soma=pts[0], position=np.array([5.0, 6.0, 7.0]), angles=[np.pi / 2, 0, 0])
    np.testing.assert_allclose(out, [[5, 6, 7], [5, 6, 107]], atol=1e-12)


def test_to_world_many_nodes_matches_one_at_a_time():
    rng = np.random.default_rng(1)
    pts, soma = rng.normal(size=(7, 3)), rng.normal(size=3)
    pos, ang = rng.normal(size=(4, 3)), rng.uniform(0, 6, size=(4, 3))
    many = to_world(pts, soma, pos, ang)
    assert many.shape == (4, 7, 3)
    for i in range(4):
        np.testing.assert_allclose(many[i], to_world(pts, soma, pos[i], ang[i]), atol=1e-12)


def test_node_angles_fills_missing_axes_and_rejects_bad_shapes():
    assert node_angles({"x": np.zeros(2)}, 2) is None
    a = node_angles({"rotation_angle_zaxis": np.array([1.0, 2.0])}, 2)
    np.testing.assert_array_equal(a, [[0, 0, 1], [0, 0, 2]])
    with pytest.raises(ValueError, match="shape"):
        rotation_matrices(np.zeros(3))
