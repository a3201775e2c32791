"""Drawing poses on images: one colour per person, joint confidence as opacity."""

from grapepose.visualize.draw import draw_poses, person_color

__all__ = ["draw_poses", "person_color"]
