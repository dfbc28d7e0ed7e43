import io

import pytest
from PIL import Image

from services.meme.render import RenderedMeme, render_png

CAPTION_200 = (
    "When you finally understand the quarterly report but the meeting already ended "
    "and everyone is staring at you\nwaiting for an answer about pineapple pizza in "
    "Long Island City right now on a Tuesday eve"
)


def _inside(rendered: RenderedMeme, width: int, height: int) -> None:
    assert rendered.text_boxes
    for box in rendered.text_boxes:
        assert 0 <= box.left < box.right <= width, box
        assert 0 <= box.top < box.bottom <= height, box


def test_png_decodes_with_the_configured_size() -> None:
    rendered = render_png("top text\nbottom text", "Paris", 640, 480)
    image = Image.open(io.BytesIO(rendered.png))
    assert image.format == "PNG"
    assert image.size == (640, 480)


@pytest.mark.parametrize(("width", "height"), [(800, 600), (400, 300), (300, 600)])
def test_two_hundred_character_caption_fits_inside(width: int, height: int) -> None:
    assert len(CAPTION_200) == 200
    rendered = render_png(CAPTION_200, "Long Island City", width, height)
    _inside(rendered, width, height)
    top, *_, footer = rendered.text_boxes
    assert footer.top >= top.bottom


def test_unbreakable_and_oversized_captions_are_cut_not_spilled() -> None:
    rendered = render_png("x" * 280 + "\n" + "y" * 280, "the open ocean near Taiohae", 160, 120)
    _inside(rendered, 160, 120)


def test_top_and_bottom_blocks_do_not_overlap() -> None:
    rendered = render_png("one does not simply\nwalk into " + "Mordor " * 20, None, 800, 600)
    boxes = rendered.text_boxes
    tops = [b for b in boxes if b.bottom <= 300]
    bottoms = [b for b in boxes if b.top >= 300]
    assert tops
    assert bottoms
    assert len(tops) + len(bottoms) == len(boxes)


def test_same_caption_same_image() -> None:
    first = render_png("cats\nin Paris", "Paris", 320, 240)
    assert render_png("cats\nin Paris", "Paris", 320, 240).png == first.png
    assert render_png("dogs\nin Paris", "Paris", 320, 240).png != first.png
