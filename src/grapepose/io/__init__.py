"""Where frames come from (images, folders, globs, videos, webcams) and where drawn output goes."""

from grapepose.io.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Source, expand_sources, prefetch
from grapepose.io.video import VideoReader, VideoWriter, write_image

__all__ = [
    "Source", "expand_sources", "prefetch", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES",
    "VideoReader", "VideoWriter", "write_image",
]  # fmt: skip
