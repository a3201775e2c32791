"""Drawing poses on images: one colour per person, joint score as opacity, absent joints left out."""

from grapepose.visualize.draw import MIN_JOINT_SCORE, draw_poses, person_color

__all__ = ["MIN_JOINT_SCORE", "draw_poses", "person_color"]
